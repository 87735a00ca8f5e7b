"""A join costs the same in any room: the welcome lists at most
--welcome-members members (newest first) and says "members_more" when the
room has more, so thousands of clients joining one room cannot make each
welcome (and the loop) grow with the room."""

from lib.proc import raise_nofile


def join_many(s, n, room="big"):
    members = []
    for i in range(n):
        m = s.ws("/?id=%s&user=u%d" % (room, i))
        m.join()
        members.append(m)
    return members


def test_welcome_lists_at_most_welcome_members(bc):
    raise_nofile()
    s = bc("--rate-limit", "0", "--welcome-members", "5")
    keep = join_many(s, 8)  # noqa: F841 (open while the welcome is read)
    late = s.ws("/?id=big&user=late")
    w, _ = late.join()
    assert w["count"] == 9
    assert len(w["members"]) == 5
    assert w["members"][0] == "late"      # newest first, the joiner included
    assert w["members_more"] is True
    # the full list stays one request away
    status, _, body = s.get("/rooms/big")
    assert status == 200
    assert body.count(b'"u') == 8 and b'"late"' in body


def test_small_room_welcome_has_every_member_and_no_flag(bc):
    s = bc("--rate-limit", "0", "--welcome-members", "5")
    keep = join_many(s, 4, room="small")  # noqa: F841 (open while the welcome is read)
    w, _ = s.ws("/?id=small&user=x").join()
    assert w["count"] == 5 and len(w["members"]) == 5
    assert "members_more" not in w


def test_welcome_members_default_is_100(bc):
    raise_nofile()
    s = bc("--rate-limit", "0")
    keep = join_many(s, 101, room="hundred")  # noqa: F841 (open while the welcome is read)
    w, _ = s.ws("/?id=hundred&user=last").join()
    assert w["count"] == 102 and len(w["members"]) == 100 and w["members_more"] is True
