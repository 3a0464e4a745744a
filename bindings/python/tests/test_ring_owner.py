"""HashClient(ring_dir=, ring_owner=): naming the agent's user.

A ring directory in a parent that others can write (here: group-writable,
the agent's group) could have been made by anyone, so a reader refuses it
unless it names the user the ring must belong to. The agent runs as
nobody and makes the ring directory in such a parent; the client (root)
is refused without ring_owner, accepted with nobody's uid or name, and
refused with any other owner. Needs root (to run the agent as another
uid); the argument checks run without it.
"""
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

import mcring
from test_ring_dir import wait_for


def _outsider():
    """The agent's user: nobody, an existing uid other than ours."""
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to run the agent as")
    if pw.pw_uid == os.geteuid():
        pytest.skip("running as nobody: the agent needs another uid")
    return pw


@pytest.fixture
def shared_ring(build_dir, servers):
    """(ring_dir, agent's passwd entry): a ring nobody's agent publishes
    in a directory owned by root, group nogroup, mode 0775."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs mcring-agent as nobody in a parent "
                    "directory it can write")
    pw = _outsider()
    # Not in MCRING_WORK (mode 0700): the agent must reach its files.
    top = tempfile.mkdtemp(prefix="mcring-owner-")
    proc = None
    try:
        os.chmod(top, 0o755)
        nodes = os.path.join(top, "nodes")
        with open(nodes, "w") as f:
            f.write("%s:%d\n" % servers[0])
        os.chmod(nodes, 0o644)
        shared = os.path.join(top, "shared")
        os.mkdir(shared)
        os.chown(shared, 0, pw.pw_gid)
        os.chmod(shared, 0o775)  # group-writable: anyone in it could squat
        ring = os.path.join(shared, "ring")
        log = open(os.path.join(top, "agent.log"), "w")
        proc = subprocess.Popen(
            [os.path.join(build_dir, "mcring-agent"), "--file", nodes,
             "--ring-dir", ring, "--interval", "0.1", "--stats-slots", "0",
             "--log-level", "warning"],
            user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], stdout=log,
            stderr=subprocess.STDOUT)
        log.close()

        def published():
            if proc.poll() is not None:
                with open(os.path.join(top, "agent.log")) as f:
                    pytest.fail("mcring-agent exited %d: %s"
                                % (proc.returncode, f.read()))
            return os.path.isdir(ring) and \
                os.path.exists(os.path.join(ring, "ctl")) and \
                any(n.startswith("ring.") for n in os.listdir(ring))
        wait_for(published, "nobody's agent to publish its ring")
        # What the test is about: the directory and its files are nobody's
        # and the parent lets nobody's group create entries.
        assert os.stat(ring).st_uid == pw.pw_uid
        assert os.stat(os.path.join(ring, "ctl")).st_uid == pw.pw_uid
        yield ring, pw
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(top, ignore_errors=True)


def client(ring, **kw):
    return mcring.HashClient(ring_dir=ring, timeout=5, connect_timeout=5,
                             **kw)


def test_refused_without_ring_owner(shared_ring):
    ring, _ = shared_ring
    with pytest.raises(OSError) as e:
        client(ring)
    msg = str(e.value)
    assert "its parent" in msg and "mode 0775" in msg, msg
    assert "lets another user create or replace the ring directory" in msg
    assert "ring_owner" in msg, msg  # says how to get past it


@pytest.mark.parametrize("how", ["uid", "name", "digits"])
def test_accepted_with_the_agents_user(shared_ring, servers, how):
    ring, pw = shared_ring
    owner = {"uid": pw.pw_uid, "name": pw.pw_name,
             "digits": str(pw.pw_uid)}[how]
    c = client(ring, ring_owner=owner)
    assert c.ring_owner == owner
    assert c.nodes() == ["%s:%d" % servers[0]]
    assert c.set(b"owned", b"yes", noreply=False)
    assert c.get(b"owned") == b"yes"
    c.close()


@pytest.mark.parametrize("owner", [0, "root"])
def test_refused_with_another_owner(shared_ring, owner):
    ring, pw = shared_ring
    with pytest.raises(OSError) as e:
        client(ring, ring_owner=owner)
    msg = str(e.value)
    assert "owned by uid %d, expected uid 0" % pw.pw_uid in msg, msg


def test_ring_owner_arguments(tmp_path):
    ring = str(tmp_path / "ring")  # never reached: the arguments fail first
    with pytest.raises(ValueError, match="ring_owner: no user named "
                       "'mcring-no-such-user'"):
        mcring.HashClient(ring_dir=ring, ring_owner="mcring-no-such-user")
    with pytest.raises(ValueError, match="ring_owner: no user named ''"):
        mcring.HashClient(ring_dir=ring, ring_owner="")
    with pytest.raises(ValueError, match="ring_owner: -1 is not a uid"):
        mcring.HashClient(ring_dir=ring, ring_owner=-1)
    with pytest.raises(ValueError, match="ring_owner: 4294967295 is not"):
        mcring.HashClient(ring_dir=ring, ring_owner=2 ** 32 - 1)
    with pytest.raises(TypeError, match="ring_owner must be a user name"):
        mcring.HashClient(ring_dir=ring, ring_owner=1.5)
    with pytest.raises(TypeError, match="ring_owner must be a user name"):
        mcring.HashClient(ring_dir=ring, ring_owner=True)
    # Only a ring directory has an owner to name.
    with pytest.raises(ValueError, match="only meaningful with ring_dir"):
        mcring.HashClient(servers=["127.0.0.1:11211"], ring_owner=0)
    with pytest.raises(ValueError, match="only meaningful with ring_dir"):
        mcring.HashClient(elasticache="127.0.0.1:1", ring_owner="root")
    # The core refuses the same, for anyone calling it directly.
    with pytest.raises(ValueError, match="only meaningful with ring_dir"):
        mcring._Core(servers="127.0.0.1:11211", ring_owner_uid=0)
    # A good owner with a missing directory fails on the directory.
    with pytest.raises(OSError):
        mcring.HashClient(ring_dir=ring, ring_owner=os.geteuid())
