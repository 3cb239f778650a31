"""Property test: random sequences of teaching requests thrown at the handlers (no DDS). Handlers
never raise; a refused request changes nothing; the memory stays consistent with the class map,
with a model kept independently of the code, and with what is saved on disk."""
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages import make_image
from rns_ros.core.memory.persistence import load_memory, save_memory
from rns_ros.ros.teaching.teacher import Teacher
from rns_ros.srv import AddClasses, AddExemplar, RemoveClasses, RemoveExemplars
from teaching_helpers import BoxMasker, exemplar_request, tiny_engine

H, W = 16, 20
NAMES = ["a", "b", "my a", "", " "]
IMAGE = make_image(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8")

names = st.sampled_from(NAMES)
coord = st.integers(-3, 24)
annotation = st.one_of(
    st.builds(lambda y0, y1, x0, x1: ("mask", (y0, y1, x0, x1)), coord, coord, coord, coord),
    st.builds(lambda b: ("box", b), st.lists(coord, min_size=3, max_size=5)),
    st.builds(lambda p, l: ("points", p, l), st.lists(st.tuples(coord, coord), max_size=3),
              st.lists(st.booleans(), max_size=3)),
    st.just(("none",)),
)
request = st.one_of(
    st.tuples(st.just("add_classes"), st.lists(names, max_size=3)),
    st.tuples(st.just("remove_classes"), st.lists(names, max_size=2)),
    st.tuples(st.just("add_exemplar"), names, st.booleans(), annotation, st.booleans()),
    st.tuples(st.just("remove_exemplars"), st.lists(st.integers(0, 8), max_size=2), names),
)


def build(op):
    kind = op[0]
    if kind == "add_classes":
        return AddClasses.Request(names=op[1]), AddClasses.Response()
    if kind == "remove_classes":
        return RemoveClasses.Request(names=op[1]), RemoveClasses.Response()
    if kind == "remove_exemplars":
        return RemoveExemplars.Request(exemplar_ids=op[1], class_name=op[2]), RemoveExemplars.Response()
    _, name, create, ann, with_image = op
    image = IMAGE if with_image else None
    if ann[0] == "mask":
        y0, y1, x0, x1 = ann[1]
        mask = np.zeros((H, W), bool)
        mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        req = exemplar_request(name, image, mask=mask, create_class=create)
    elif ann[0] == "box":
        req = exemplar_request(name, image, box=ann[1], create_class=create)
    elif ann[0] == "points":
        req = exemplar_request(name, image, points=ann[1], labels=ann[2], create_class=create)
    else:
        req = exemplar_request(name, image, create_class=create)
    return req, AddExemplar.Response()


def state(teacher):
    cmap = teacher.class_map()
    return [(c.id, c.name, tuple(c.exemplar_ids)) for c in cmap.classes], cmap.support_version


def check_consistent(teacher):
    memory = teacher.engine.segmenter.memory
    classes, _ = state(teacher)
    ids = [c[0] for c in classes]
    assert ids == sorted(set(ids)) and all(i >= 1 for i in ids)
    named = [c[1] for c in classes if c[1]]
    assert len(named) == len(set(named))
    listed = [e for c in classes for e in c[2]]
    assert sorted(listed) == sorted(memory.exemplar_ids) and len(listed) == len(set(listed))
    # one feature row per (exemplar, class) here: single-class exemplars
    assert memory.num_features == len(listed) == memory.num_exemplars
    saved, report = load_memory(teacher.store.directory)
    assert report.ok
    assert [(c.id, c.name, c.exemplar_ids) for c in saved.classes] == [
        (i, n or None, e) for i, n, e in classes]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request, min_size=1, max_size=8), st.booleans())
def test_random_requests_never_raise_and_keep_the_memory_consistent(ops, frame_seen):
    with tempfile.TemporaryDirectory() as tmp:
        engine = tiny_engine()
        teacher = Teacher(engine, memory_dir=tmp, latest_frame=lambda: IMAGE if frame_seen else None,
                          masker=BoxMasker)
        save_memory(engine.segmenter.memory, tmp)
        ever_used: dict[int, str] = {}
        for op in ops:
            before = state(teacher)
            req, resp = build(op)
            res = getattr(teacher, op[0])(req, resp)  # must not raise
            after = state(teacher)
            if res.success:
                assert after[1] > before[1]
            else:
                assert res.message.startswith("refused"), res.message  # never an internal error
                assert after == before
            for cid, name, _ in after[0]:  # ids are never reused for another name
                assert ever_used.setdefault(cid, name) == name
            check_consistent(teacher)
