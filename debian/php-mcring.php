mod debian/build-php/modules/mcring.so
mod bindings/php/mcring.ini
