"""Teaching at runtime: the services that add and remove classes and exemplars, teach by click,
save and load the support memory, and the memory directory they persist to (docs/teaching.md).

    teacher.py       Teacher: the handlers (request -> checks -> one engine change -> save -> answer)
    requests.py      request checks: images, masks, boxes, points, scribbles; Refused
    class_ids.py     ClassIdLimit: new class ids above a ceiling refused (255 with depth.aligned_outputs)
    prompting.py     SAM 2 prompts (box, points, scribble) -> masks
    clicks.py        ~/click: a clicked pixel -> an add_exemplar request
    memory_store.py  autosave and restore of memory_dir (atomic, one writer)
    services.py      TeachingInterfaces: the handlers put on the node as services and click topics

Contract (teacher.py states it in full): a handler never raises; a refusal changes nothing; a
change is applied under the engine lock (between two frames) and saved before the answer.
"""
