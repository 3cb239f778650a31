"""Stage 4 of the method, test-time training (rns-method.md section 4): a linear classifier trained
per image on the retrieved, fused and pseudo rows, then applied to the image's queries.

Modules from the bottom up (each imports only those above it in this list):

    config.py      `AdapterConfig`: every hyperparameter and ablation switch, the authors' defaults
    problem.py     the training problem of one image: rows, labels or soft targets, weights
    plain.py       the reference loop (autograd + torch.optim), the start and the objective
    native.py      the compiled C kernel of the fast solver's subspace steps (native/*.c)
    graphed_steps.py  exact steps in fixed buffers, captured once per shape as CUDA graphs and
                   replayed (the fast solver on CUDA, batched frames everywhere)
    fast.py        the fast solver: the same objective with analytic gradients (the default)
    options.py     speed options that change what is computed: L-BFGS, batched frames
    test_time.py   `TestTimeAdapter`, the entry point: build the problem, solve, predict
    synthetic.py   synthetic memories and queries for the agreement tests and the benchmark

Contract: `TestTimeAdapter.predict(queries, memory)` -> (N, C) probabilities in
`memory.class_ids` order; it never changes the memory.
"""
