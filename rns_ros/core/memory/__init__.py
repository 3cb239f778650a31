"""Stage 3 of the method, the support memory (rns-method.md sections 2-3): what the robot was taught
and how it is searched.

    exemplars.py    an exemplar (image + label map) -> its per-image class features (eq. 2)
    fusion.py       fused features f_c^lambda = normalise(lambda v_c + (1 - lambda) t_c) (eqs. 4-5)
    support.py      `SupportMemory`: classes (stable ids, names, text), exemplars, the bank V,
                    aggregated visual features and prototypes, kept up to date on every change
    retrieval.py    the inner-product index over V (faiss or a device tensor), updated, never rebuilt
    persistence.py  atomic, versioned save/load of a memory directory
    merging.py      add one saved memory to another (same-name classes joined, ids never change)

Contract: every refused call raises before anything changes; every change bumps `version`. Nothing
here trains or segments; the adapter stage reads the memory through `SupportMemory.bank()`,
`prototypes()`, `text_matrix()` and `search()`.
"""
