"""The console's JSON API against a real rns node (test-tiny engine and SAM 2) over real DDS and
real HTTP: the token, every endpoint's happy path and refusals, and each change visible in the
node's ~/class_map."""
from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image

from console_rig import start_rig

LIVE_TIMEOUT = 30.0


@pytest.fixture
def rig(ros, tmp_path):
    rig = start_rig(ros, tmp_path)
    try:
        yield rig
    finally:
        rig.close()


def class_names(msg) -> list[str]:
    return [c.name for c in msg.classes]


def picture(rig, after=0, camera="default"):
    """The next picture of the live feed (status, headers)."""
    status, headers, body = rig.http.get(f"/api/cameras/{camera}/picture?after={after}&wait=10")
    return status, headers, body


def teachable_picture(ros, rig, camera="default"):
    """Headers of a live picture whose raw camera frame the console holds."""
    seq = 0

    def next_teachable():
        nonlocal seq
        status, headers, _ = picture(rig, seq, camera)
        if status == 200:
            seq = int(headers["x-seq"])
            return headers if headers["x-teachable"] == "1" else None
        return None
    try:
        return ros.wait_for(next_teachable, timeout=LIVE_TIMEOUT, what="a teachable picture")
    except AssertionError:
        feed = rig.console.feed(camera)
        raise AssertionError(f"no teachable picture: seq {seq}, subscribed {rig.console.subscribed()}, "
                             f"inputs {rig.console.input_topics}, overlays {feed and feed.overlays_received}, "
                             f"processed {rig.rns.stats.snapshot().processed}, graph {rig.console.graph_error!r} "
                             f"{rig.console.cameras} {rig.console.get_node_names_and_namespaces()} "
                             f"{rig.console.get_publisher_names_and_types_by_node('rns', '/')}, "
                             f"answer {picture(rig, seq, camera)}") from None


def test_every_request_needs_the_token_and_a_refused_one_changes_nothing(ros, rig):
    ros.wait_for(lambda: rig.console.class_map is not None, what="the class map")
    version = rig.console.class_map.support_version
    for method, path, body in [("GET", "/api/classes", None), ("POST", "/api/classes", {"name": "intruder"}),
                               ("DELETE", "/api/classes/1", None), ("GET", "/api/status", None),
                               ("GET", "/static/console.js", None), ("GET", "/", None),
                               ("POST", "/api/memory/save", {"snapshot": "x"})]:
        for token in (None, "wrong-token-wrong-token"):
            status, headers, payload = rig.http.request(method, path, body, token=token)
            assert status == 401, (method, path, token, status)
            if path.startswith("/api/"):
                assert "token" in payload["error"]
    assert class_names(rig.rns.teacher.class_map()) == ["a"]
    assert rig.rns.teacher.class_map().support_version == version
    assert not (rig.server.app.state.api.config.snapshot_root() / "x").exists()
    # the right token, as a header: served
    assert rig.http.get("/api/classes")[0] == 200


def test_the_page_entrance_sets_an_httponly_strict_cookie_and_drops_the_token_from_the_address(rig):
    status, headers, _ = rig.http.get(f"/?token={rig.server.token}", token=None)
    # urllib follows the redirect without the cookie: the landing answer is 401, the redirect's cookie was set
    assert status == 401
    import http.client
    conn = http.client.HTTPConnection(rig.server.host, rig.server.port, timeout=10)
    conn.request("GET", f"/?token={rig.server.token}")
    response = conn.getresponse()
    cookie = response.getheader("set-cookie")
    assert response.status == 303 and response.getheader("location") == "/"
    assert f"rns_console_token={rig.server.token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    response.read()
    conn.request("GET", "/?token=not-the-token-at-all")
    response = conn.getresponse()
    assert response.status == 401 and response.getheader("set-cookie") is None
    response.read()
    conn.request("GET", "/api/classes", headers={"cookie": f"rns_console_token={rig.server.token}"})
    response = conn.getresponse()
    assert response.status == 200
    response.read()
    conn.close()


def test_no_cors_and_cross_site_writes_are_refused(ros, rig):
    status, headers, _ = rig.http.get("/api/classes", headers={"origin": "http://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in {k.lower() for k in headers.keys()}
    status, _, payload = rig.http.post("/api/classes", {"name": "x"}, headers={"origin": "http://evil.example"})
    assert status == 403 and "cross-site" in payload["error"]
    for token in (None, "default"):  # a browser's preflight carries no credentials; either way: no CORS grant
        status, headers, _ = rig.http.request("OPTIONS", "/api/classes", token=token, headers={
            "origin": "http://evil.example", "access-control-request-method": "POST"})
        assert status in (401, 403) and not [k for k in headers.keys() if k.lower().startswith("access-control")]
    assert class_names(rig.rns.teacher.class_map()) == ["a"]


def test_classes_add_list_remove_round_trip_through_the_class_map(ros, rig):
    status, _, payload = rig.http.get("/api/classes")
    assert status == 200 and [c["name"] for c in payload["classes"]] == ["a"]
    first = payload["classes"][0]
    assert set(first) >= {"id", "name", "color", "exemplar_count", "has_text"}
    assert first["has_text"] is True and first["exemplar_count"] == 0
    r, g, b = (round(v * 255) for v in (rig.rns.teacher.class_map().classes[0].color.r,
                                        rig.rns.teacher.class_map().classes[0].color.g,
                                        rig.rns.teacher.class_map().classes[0].color.b))
    assert first["color"] == f"#{r:02x}{g:02x}{b:02x}"

    status, _, payload = rig.http.post("/api/classes", {"name": "mug", "description": "a red mug"})
    assert status == 201 and payload["class_ids"] == [2]
    ros.wait_for(lambda: class_names(rig.console.class_map) == ["a", "mug"], what="class map with mug")
    assert [c.description for c in rig.rns.teacher.class_map().classes] == ["", "a red mug"]
    status, _, payload = rig.http.post("/api/classes", {"names": ["b", "c"]})
    assert status == 201 and payload["class_ids"] == [3, 4]

    # the node's refusal, verbatim, and nothing changed
    version = rig.rns.teacher.class_map().support_version
    status, _, payload = rig.http.post("/api/classes", {"name": "mug"})
    assert status == 409 and payload["error"].startswith("refused:") and "mug" in payload["error"]
    assert rig.rns.teacher.class_map().support_version == version

    status, _, payload = rig.http.delete("/api/classes/2")
    assert status == 200 and [c["name"] for c in payload["classes"]] == ["a", "b", "c"]
    ros.wait_for(lambda: class_names(rig.console.class_map) == ["a", "b", "c"], what="class map without mug")
    status, _, payload = rig.http.delete("/api/classes/2")
    assert status == 404 and "no class with id 2" in payload["error"]
    status, _, payload = rig.http.delete("/api/classes/abc")
    assert status == 400


@pytest.mark.parametrize("body, says", [
    ("not json", "not JSON"),
    ({}, 'give "name"'),
    ({"name": ""}, "printable"),
    ({"name": "x" * 101}, "1..100"),
    ({"name": "bad\nname"}, "printable"),
    ({"name": 3}, "must be a string"),
    ({"name": "ok", "colour": "red"}, "unknown field"),
    ({"names": ["a", "b"], "descriptions": ["one"]}, "one per name"),
    (["a"], "JSON object"),
])
def test_bad_class_requests_are_refused_before_the_node_sees_them(rig, body, says):
    version = rig.rns.teacher.class_map().support_version
    if isinstance(body, str):
        status, _, payload = rig.http.request("POST", "/api/classes", raw=body.encode())
    else:
        status, _, payload = rig.http.post("/api/classes", body)
    assert status == 400 and says in payload["error"]
    assert rig.rns.teacher.class_map().support_version == version


def test_a_body_over_the_limit_is_refused_with_413(rig):
    big = {"name": "a", "description": "x" * 70000}
    status, _, payload = rig.http.post("/api/classes", big)
    assert status == 413 and "error" in payload
    assert class_names(rig.rns.teacher.class_map()) == ["a"]


def test_the_live_feed_and_freeze_pin_the_exact_camera_frame_for_the_exemplar(ros, rig):
    headers = teachable_picture(ros, rig)
    seq = int(headers["x-seq"])
    assert headers["x-frame-id"] == "cam" and (headers["x-frame-width"], headers["x-frame-height"]) == ("64", "48")
    status, _, frozen = rig.http.post("/api/frames", {"camera": "default", "seq": seq})
    assert status == 201 and frozen["stamp"] == headers["x-stamp"]
    stamp_sec = int(frozen["stamp"].split(".")[0])
    # the camera goes on: the node's latest frame is soon a newer one
    ros.wait_for(lambda: rig.rns.frame_loop.latest_image.header.stamp.sec > stamp_sec + 2, what="newer camera frames")
    status, _, added = rig.http.post("/api/exemplars", {"camera": "default", "frame": frozen["frame"], "class": "a",
                                                        "box": [4, 4, 40, 30]})
    assert status == 201, added
    assert added["frame"]["stamp"] == frozen["stamp"]
    stored = rig.engine.segmenter.memory.exemplar(added["exemplar_id"])
    np.testing.assert_array_equal(stored.image, rig.camera.sent[stamp_sec])  # the frozen frame, pixel for pixel
    ros.wait_for(lambda: rig.console.class_map.classes[0].exemplar_count == 1, what="the exemplar in ~/class_map")

    # the frozen frame's own picture, then release it
    status, got, body = rig.http.get(f"/api/frames/{frozen['frame']}/picture")
    assert status == 200 and got["content-type"] == "image/jpeg" and body[:3] == b"\xff\xd8\xff"
    assert rig.http.delete(f"/api/frames/{frozen['frame']}")[0] == 200
    status, _, payload = rig.http.post("/api/exemplars", {"camera": "default", "frame": frozen["frame"], "class": "a",
                                                          "box": [4, 4, 40, 30]})
    assert status == 404 and "freeze the view again" in payload["error"]


def test_freeze_refusals(ros, rig):
    teachable_picture(ros, rig)
    for body, status_wanted, says in [({"camera": "default", "seq": 10 ** 6}, 409, "no longer kept"),
                                      ({"camera": "side", "seq": 1}, 404, "no camera 'side'"),
                                      ({"camera": "default"}, 400, "needs the field"),
                                      ({"camera": "default", "seq": -1}, 400, "non-negative"),
                                      ({"camera": "default", "seq": True}, 400, "non-negative")]:
        status, _, payload = rig.http.post("/api/frames", body)
        assert status == status_wanted and says in payload["error"], (body, payload)


def frozen_frame(ros, rig):
    headers = teachable_picture(ros, rig)
    status, _, frozen = rig.http.post("/api/frames", {"camera": "default", "seq": int(headers["x-seq"])})
    assert status == 201
    return frozen


def test_points_and_scribbles_teach_and_exemplars_are_removed_by_id(ros, rig):
    frozen = frozen_frame(ros, rig)
    base = {"camera": "default", "frame": frozen["frame"]}
    status, _, by_points = rig.http.post("/api/exemplars", {**base, "class": "a", "points": [
        {"x": 20, "y": 20, "positive": True}, {"x": 60, "y": 40, "positive": False}]})
    assert status == 201, by_points
    status, _, by_scribble = rig.http.post("/api/exemplars", {**base, "class": "new thing", "create_class": True,
                                                              "scribble": {"width": 4, "strokes": [[[5, 5], [30, 25]]]}})
    assert status == 201, by_scribble
    classes = {c["name"]: c for c in by_scribble["classes"]}
    assert classes["a"]["exemplar_count"] == 1 and classes["new thing"]["exemplar_count"] == 1
    assert classes["new thing"]["has_text"] is False
    ros.wait_for(lambda: [c.exemplar_count for c in rig.console.class_map.classes] == [1, 1], what="class map")

    status, _, payload = rig.http.post("/api/exemplars", {**base, "class": "unknown", "box": [1, 1, 20, 20]})
    assert status == 409 and "unknown class 'unknown'" in payload["error"]  # the node's own reason
    status, _, payload = rig.http.post("/api/exemplars", {**base, "camera": "side", "class": "a", "box": [1, 1, 20, 20]})
    assert status == 400 and "frozen on camera 'default'" in payload["error"]
    status, _, payload = rig.http.post("/api/exemplars", {**base, "class": "a", "preview_id": "p999"})
    assert status == 404 and "preview again" in payload["error"]

    status, _, payload = rig.http.delete(f"/api/exemplars/{by_points['exemplar_id']}")
    assert status == 200 and {c["name"]: c["exemplar_count"] for c in payload["classes"]} == {"a": 0, "new thing": 1}
    status, _, payload = rig.http.delete(f"/api/exemplars/{by_points['exemplar_id']}")
    assert status == 409 and "unknown exemplar" in payload["error"]
    assert rig.engine.segmenter.memory.num_exemplars == 1


def test_snapshots_save_and_load_by_name_only(ros, rig, tmp_path):
    assert rig.http.post("/api/classes", {"name": "mug"})[0] == 201
    status, _, saved = rig.http.post("/api/memory/save", {"snapshot": "monday"})
    assert status == 200 and saved["directory"] == str(tmp_path / "snapshots" / "monday")
    assert (tmp_path / "snapshots" / "monday" / "memory.json").is_file()
    status, _, listed = rig.http.get("/api/snapshots")
    assert listed["snapshots"] == ["monday"]
    status, _, saved = rig.http.post("/api/memory/save", {})  # the node's own memory_dir
    assert status == 200 and saved["directory"] == str(tmp_path / "mem")

    assert rig.http.delete("/api/classes/2")[0] == 200
    status, _, loaded = rig.http.post("/api/memory/load", {"snapshot": "monday"})
    assert status == 200 and [c["name"] for c in loaded["classes"]] == ["a", "mug"]
    ros.wait_for(lambda: class_names(rig.console.class_map) == ["a", "mug"], what="the loaded class map")

    version = rig.rns.teacher.class_map().support_version
    (tmp_path / "outside").mkdir()
    (tmp_path / "snapshots" / "link").symlink_to(tmp_path / "outside")
    for path, body, says in [("/api/memory/save", {"snapshot": "../escape"}, "snapshot names"),
                             ("/api/memory/save", {"snapshot": "/tmp/x"}, "snapshot names"),
                             ("/api/memory/save", {"directory": "/tmp/x"}, "unknown field"),
                             ("/api/memory/save", {"snapshot": "link"}, "symbolic link"),
                             ("/api/memory/load", {"snapshot": "link"}, "symbolic link"),
                             ("/api/memory/load", {"snapshot": "tuesday"}, "no snapshot named 'tuesday'"),
                             ("/api/memory/load", {}, "give the snapshot")]:
        status, _, payload = rig.http.post(path, body)
        assert status == 400 and says in payload["error"], (body, payload)
    assert not (tmp_path / "escape").exists() and not list((tmp_path / "outside").iterdir())
    assert rig.rns.teacher.class_map().support_version == version


def test_nobody_watching_costs_the_node_no_overlay(ros, tmp_path):
    rig = start_rig(ros, tmp_path, idle_s=1.0)
    try:
        overlay = rig.rns.outputs.publishers["overlay"]
        assert overlay.get_subscription_count() == 0  # a console alone subscribes to no camera topic
        before = teachable_picture(ros, rig)
        assert overlay.get_subscription_count() == 1
        assert rig.console.subscribed() == {"overlays": ["/rns/overlay"], "inputs": ["/image"]}
        ros.wait_for(lambda: overlay.get_subscription_count() == 0, timeout=10, what="the overlay left alone")
        assert rig.console.subscribed() == {"overlays": [], "inputs": []}
        # a page that comes later sees a new picture, never the stale one from before
        status, headers, _ = picture(rig, 0)
        assert status == 200 and float(headers["x-stamp"]) > float(before["x-stamp"])
        assert int(headers["x-seq"]) > int(before["x-seq"])
    finally:
        rig.close()


def test_status_and_cameras_describe_the_node(ros, rig):
    teachable_picture(ros, rig)
    status, _, cameras = rig.http.get("/api/cameras")
    assert cameras == {"cameras": [{"name": "default", "overlay_topic": "/rns/overlay"}], "inputs": ["/image"]}
    ros.wait_for(lambda: "/rns: segmentation" in rig.http.get("/api/status")[2]["diagnostics"], what="diagnostics")
    status, _, payload = rig.http.get("/api/status")
    assert payload["reachable"] and payload["target"] == "/rns" and payload["cameras"] == ["default"]
    assert payload["support_version"] == rig.rns.teacher.class_map().support_version
    values = payload["diagnostics"]["/rns: segmentation"]["values"]
    assert values["state"] == "active" and int(values["frames_processed"]) > 0


def test_an_unreachable_node_is_named(ros, tmp_path):
    from console_rig import Http
    from rclpy.parameter import Parameter
    from rns_ros.console.node import ConsoleNode
    from rns_ros.console.server import ConsoleServer

    console = ros.add(ConsoleNode(context=ros.context, parameter_overrides=[
        Parameter("port", value=0), Parameter("target", value="/nobody"), Parameter("service_timeout_s", value=2.0)]))
    server = ConsoleServer(console)
    server.start_in_thread()
    try:
        http = Http(server.base_url, server.token)
        status, _, payload = http.post("/api/classes", {"name": "x"})
        assert status == 503 and "/nobody offers no add_classes service" in payload["error"]
        status, _, payload = http.get("/api/cameras/default/picture?wait=0")
        assert status == 404 and "node /nobody not found" in payload["error"]
    finally:
        server.stop()


def test_a_chunked_body_over_the_limit_is_cut_off(rig):
    import http.client

    conn = http.client.HTTPConnection(rig.server.host, rig.server.port, timeout=10)
    chunks = (b'{"name": "' + b"x" * 4096 for _ in range(40))
    conn.request("POST", "/api/classes", body=chunks, encode_chunked=True,
                 headers={"authorization": f"Bearer {rig.server.token}", "content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 413 and b"error" in response.read()
    conn.close()
    assert class_names(rig.rns.teacher.class_map()) == ["a"]


def test_an_overlay_and_its_raw_frame_are_paired_whichever_comes_first(ros, tmp_path):
    """The overlay and the camera input are two topics: either may be delivered first."""
    from messages import make_image, random_rgb
    from rclpy.parameter import Parameter
    from rns_ros.console.node import ConsoleNode

    console = ros.add(ConsoleNode(context=ros.context, parameter_overrides=[Parameter("target", value="/nobody")]))
    console.input_topics = {"/camera": Image}
    console.cameras = {"default": "/nobody/overlay"}
    feed = console.watch("default")
    for i, overlay_first in enumerate([True, False, True]):
        raw = make_image(random_rgb(6, 8, seed=i), "rgb8", stamp=(5000 + i, 7), frame_id="cam")
        overlay = make_image(random_rgb(6, 8, seed=10 + i), "rgb8", stamp=(5000 + i, 7), frame_id="cam")
        steps = [lambda: console._on_overlay(feed, overlay), lambda: console._on_input("/camera", raw)]
        for step in steps if overlay_first else steps[::-1]:
            step()
        picture = feed._encode_newest()
        assert picture.key == (5000 + i, 7, "cam") and picture.raw is raw


def test_several_cameras_each_teach_from_their_own_frames(ros, tmp_path):
    rig = start_rig(ros, tmp_path, node_params={"cameras": "front, left"},
                    cameras=({"topic": "front/image", "frame_id": "front"}, {"topic": "left/image", "frame_id": "left"}))
    try:
        status, _, cameras = rig.http.get("/api/cameras")
        assert [c["name"] for c in cameras["cameras"]] == ["front", "left"]
        assert [c["overlay_topic"] for c in cameras["cameras"]] == ["/rns/front/overlay", "/rns/left/overlay"]
        for name, camera in zip(("front", "left"), rig.cameras):
            headers = teachable_picture(ros, rig, name)
            assert headers["x-frame-id"] == name
            status, _, frozen = rig.http.post("/api/frames", {"camera": name, "seq": int(headers["x-seq"])})
            status, _, added = rig.http.post("/api/exemplars", {"camera": name, "frame": frozen["frame"],
                                                                "class": "a", "box": [2, 2, 40, 30]})
            assert status == 201 and added["frame"]["frame_id"] == name, added
            stored = rig.engine.segmenter.memory.exemplar(added["exemplar_id"])
            np.testing.assert_array_equal(stored.image, camera.sent[int(frozen["stamp"].split(".")[0])])
    finally:
        rig.close()


def test_a_compressed_camera_is_taught_from_its_decoded_frame(ros, tmp_path):
    rig = start_rig(ros, tmp_path, node_params={"image_transport": "compressed"}, cameras=({"compressed": True},))
    try:
        headers = teachable_picture(ros, rig)
        assert rig.console.subscribed()["inputs"] == ["/image/compressed"]
        status, _, frozen = rig.http.post("/api/frames", {"camera": "default", "seq": int(headers["x-seq"])})
        status, _, added = rig.http.post("/api/exemplars", {"camera": "default", "frame": frozen["frame"],
                                                            "class": "a", "box": [2, 2, 40, 30]})
        assert status == 201, added
        stored = rig.engine.segmenter.memory.exemplar(added["exemplar_id"])  # PNG: lossless
        np.testing.assert_array_equal(stored.image, rig.camera.sent[int(frozen["stamp"].split(".")[0])])
    finally:
        rig.close()
