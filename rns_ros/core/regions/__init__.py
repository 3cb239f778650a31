"""Stage 2 of the method, regions (rns-method.md section 5 and eq. 13): SAM 2 masks, and pooling
patch features over any segment map.

    sam2_models.py  SAM 2 presets, checkpoints (clear fast error when absent), model building
    proposals.py    `ProposalConfig`, `RegionProposer`: automatic masks -> a partition of the image
    prompts.py      `PromptMasker`: box, points, scribble or mask -> an exemplar mask (set once, query many)
    pooling.py      normalise(sum_j S_jr x_j) for every segment r (eq. 2 for exemplars, eq. 13 for regions)

Contract: images are (H, W, 3) uint8 RGB, masks (H, W) bool, coordinates continuous pixels (x right,
y down). SAM 2 is imported and built lazily, on first use; pooling needs no SAM 2 at all.
"""
