"""The console in a real browser (headless Chromium + selenium) against a real rns node: open the
page with the token, see the overlay update, freeze, drag a box with pointer actions, type a new
class name, preview the mask, confirm, and find the class with one exemplar in the node's class
map; then remove it from the page. A screenshot of the page lands in the test's folder."""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from browser import start_chromium
from console_rig import start_rig
from rns_ros.msg import ClassMap

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
SIZE = (240, 320)  # camera frames (H, W)


@pytest.fixture
def rig(ros, tmp_path):
    rig = start_rig(ros, tmp_path, size=SIZE, rate_hz=5.0, photos=True)
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def browser(tmp_path):
    driver = start_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


def test_teach_a_new_class_from_the_browser_then_remove_it(ros, rig, browser, tmp_path):
    maps = []
    ros.node("watcher").create_subscription(ClassMap, "/rns/class_map", maps.append, LATCHED)
    ros.wait_for(lambda: maps, what="the node's class map")

    browser.get(rig.server.url)
    assert "token=" not in browser.current_url  # the token went into the cookie, out of the address bar
    metrics = lambda: browser.execute_script("return window.rnsMetrics")  # noqa: E731
    # the live overlay updates: several pictures of different camera frames are shown
    ros.wait_for(lambda: len({m["stamp"] for m in metrics()["shown"]}) >= 3, timeout=60, what="live pictures")
    ros.wait_for(lambda: browser.find_element(By.ID, "freeze").is_enabled(), what="the freeze button")
    ros.wait_for(lambda: "not received" not in browser.find_element(By.ID, "stage-note").text,
                 what="a teachable picture")

    browser.find_element(By.ID, "freeze").click()
    ros.wait_for(lambda: "frozen" in browser.find_element(By.TAG_NAME, "body").get_attribute("class"),
                 what="the frozen view")
    frozen_stamp = browser.execute_script("return state.frozen.stamp")
    frozen_sec = int(frozen_stamp.split(".")[0])

    # drag a box with pointer actions (offsets from the canvas centre), over the top-left quarter
    canvas = browser.find_element(By.ID, "canvas")
    width, height = canvas.size["width"], canvas.size["height"]
    (ActionChains(browser).move_to_element_with_offset(canvas, -width * 0.45, -height * 0.45).click_and_hold()
     .move_by_offset(width * 0.2, height * 0.2).move_by_offset(width * 0.2, height * 0.2).release().perform())
    box = browser.execute_script("return state.box")
    assert box is not None and box[0] < box[2] and box[1] < box[3]
    assert box[2] > SIZE[1] * 0.3 and box[3] > SIZE[0] * 0.3  # in frame pixels, not canvas pixels

    browser.find_element(By.ID, "class-input").send_keys("my mug")
    browser.find_element(By.ID, "preview").click()
    confirm = browser.find_element(By.ID, "confirm")
    ros.wait_for(lambda: confirm.is_enabled() or "refused" in browser.find_element(By.ID, "message").text,
                 timeout=60, what="the preview")
    assert confirm.is_enabled(), browser.find_element(By.ID, "message").text
    assert "preview:" in browser.find_element(By.ID, "message").text
    assert [c.name for c in maps[-1].classes] == ["a"]  # a preview stores nothing
    browser.save_screenshot(str(tmp_path / "console_preview.png"))

    confirm.click()
    ros.wait_for(lambda: "my mug" in [c.name for c in maps[-1].classes], timeout=60, what="my mug in ~/class_map")
    mug = next(c for c in maps[-1].classes if c.name == "my mug")
    assert mug.exemplar_count == 1 and not mug.has_text
    stored = rig.engine.segmenter.memory.exemplar(int(mug.exemplar_ids[0]))
    np.testing.assert_array_equal(stored.image, rig.camera.sent[frozen_sec])  # the frame drawn on
    # back to live, and the page lists the class with its exemplar
    ros.wait_for(lambda: "frozen" not in browser.find_element(By.TAG_NAME, "body").get_attribute("class"),
                 what="the live view again")
    item = ros.wait_for(lambda: next((text for text in class_items(browser) if "my mug" in text), None),
                        what="my mug in the page's list")
    assert "1 exemplar" in item
    browser.save_screenshot(str(tmp_path / "console.png"))
    print(f"screenshots: {tmp_path / 'console_preview.png'} {tmp_path / 'console.png'}")

    # a second run: remove it from the page (with the confirmation dialog)
    browser.find_element(By.CSS_SELECTOR, f'#classes li[data-class-id="{mug.id}"] button.remove').click()
    alert = ros.wait_for(lambda: _alert(browser), what="the confirmation dialog")
    assert "my mug" in alert.text
    alert.accept()
    ros.wait_for(lambda: [c.name for c in maps[-1].classes] == ["a"], timeout=30, what="my mug removed")
    ros.wait_for(lambda: not [text for text in class_items(browser) if "my mug" in text], what="my mug gone from the page")


def class_items(browser) -> list[str]:
    """The texts of the page's class list, read in one go (the list is redrawn as classes change)."""
    return browser.execute_script("return [...document.querySelectorAll('#classes li')].map(li => li.innerText)")


def _alert(browser):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return browser.switch_to.alert
    except NoAlertPresentException:
        return None


def test_touch_on_a_phone_sized_page_draws_a_box_and_taps_points(ros, rig, browser, tmp_path):
    """Pointer events of kind touch (a finger), in a 390x844 window: the same drawing as a mouse."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    browser.set_window_size(390, 844)
    browser.get(rig.server.url)
    ros.wait_for(lambda: browser.execute_script("return window.rnsMetrics.firstPictureMs"), timeout=60,
                 what="the live view")
    ros.wait_for(lambda: browser.find_element(By.ID, "freeze").is_enabled()
                 and "not received" not in browser.find_element(By.ID, "stage-note").text, what="a teachable picture")
    browser.find_element(By.ID, "freeze").click()
    ros.wait_for(lambda: "frozen" in browser.find_element(By.TAG_NAME, "body").get_attribute("class"),
                 what="the frozen view")
    canvas = browser.find_element(By.ID, "canvas")
    width, height = canvas.size["width"], canvas.size["height"]
    assert width <= 390  # the view fits the phone's width

    def finger():
        return ActionBuilder(browser, mouse=PointerInput(interaction.POINTER_TOUCH, "finger"))

    drag = finger()
    (drag.pointer_action.move_to(canvas, -width * 0.3, -height * 0.3).pointer_down()
     .move_to(canvas, 0, 0).move_to(canvas, width * 0.2, height * 0.2).pointer_up())
    drag.perform()
    box = browser.execute_script("return state.box")
    assert box is not None and box[2] - box[0] > SIZE[1] * 0.3 and box[3] - box[1] > SIZE[0] * 0.3

    browser.find_element(By.CSS_SELECTOR, "button[data-tool=positive]").click()
    tap = finger()
    tap.pointer_action.move_to(canvas, 0, 0).pointer_down().pointer_up()
    tap.perform()
    points = browser.execute_script("return state.points")
    assert len(points) == 1 and points[0]["positive"] and browser.execute_script("return state.box") is None
    assert abs(points[0]["x"] - SIZE[1] / 2) < SIZE[1] * 0.05 and abs(points[0]["y"] - SIZE[0] / 2) < SIZE[0] * 0.05

    browser.find_element(By.ID, "class-input").send_keys("a")
    browser.find_element(By.ID, "preview").click()
    ros.wait_for(lambda: "preview:" in browser.find_element(By.ID, "message").text
                 or "refused" in browser.find_element(By.ID, "message").text, timeout=60, what="the preview")
    browser.save_screenshot(str(tmp_path / "console_phone.png"))
    browser.find_element(By.ID, "cancel").click()
    ros.wait_for(lambda: "frozen" not in browser.find_element(By.TAG_NAME, "body").get_attribute("class"),
                 what="the live view again")
    assert rig.engine.segmenter.memory.num_exemplars == 0  # previewed and cancelled: nothing stored
