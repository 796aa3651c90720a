"""cmail.Store: users, passwords, protocols, addresses, routing, and its errors."""
import os

import pytest

import cmail


def test_store_administration(tmp_path):
    path = tmp_path / "master.db3"
    with pytest.raises(cmail.Error) as e:
        cmail.Store.open(path, create=False)
    assert e.value.status != 0 and not path.exists()
    with cmail.Store.open(path) as st:
        st.add_user("alice", "wonderland")
        st.add_user("nologin")
        with pytest.raises(cmail.AlreadyExists):
            st.add_user("alice", "again")
        assert st.authenticate("alice", "wonderland") == "alice"
        assert st.authenticate("alice", "wrong") is None
        assert st.authenticate("nologin", "") is None
        st.set_password("alice", "looking-glass")
        assert st.authenticate("alice", "looking-glass") == "alice"
        with pytest.raises(cmail.NotFound):
            st.set_password("nobody", "x")
        st.enable_smtp("alice", "any")
        st.enable_pop3("alice")
        st.enable_imap("alice")
        first = st.add_address("alice@example.test", "store", "alice")
        second = st.add_address("%@example.test", "reject")
        assert second > first
        exact = st.add_address("bob@example.test", "redirect", "alice@example.test", order=100)
        assert exact == 100
        rows = st.list_addresses()
        assert [r.order for r in rows] == sorted([r.order for r in rows], reverse=True)
        route = st.route_address("alice@example.test")
        assert route[0].router == "reject"  # the higher order is tried first
        assert {r.expression for r in route} == {"alice@example.test", "%@example.test"}
        st.delete_address(second)
        assert st.route_address("alice@example.test")[0] == cmail.Address(first, "alice@example.test", "store", "alice")
        users = {u.name: u for u in st.list_users()}
        assert users["alice"].login_enabled and not users["nologin"].login_enabled
        assert users["alice"].addresses == 1 and users["alice"].mails == 0
        assert [u.name for u in st.list_users("no%")] == ["nologin"]
        st.delete_user("nologin")
        with pytest.raises(cmail.NotFound):
            st.delete_user("nologin")
    with pytest.raises(cmail.Closed):
        st.list_users()
    with cmail.Store.open(path, read_only=True) as ro:
        assert [u.name for u in ro.list_users()] == ["alice"]
        with pytest.raises(cmail.ReadOnly):
            ro.add_user("carol", "x")


def read_only_dir(tmp_path):
    """A directory nobody may create files in: mode 0500, or /proc/self for root (who ignores modes)."""
    if os.geteuid() == 0:
        return "/proc/self"
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    return str(d)


def test_store_in_a_read_only_directory(tmp_path):
    with pytest.raises(cmail.Error) as e:
        cmail.Store.open(os.path.join(read_only_dir(tmp_path), "master.db3"))
    assert e.value.status in (1, 6, 9)  # NotFound, ReadOnly or IoError
    assert str(e.value) and not isinstance(e.value, cmail.Closed)
