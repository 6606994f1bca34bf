"""PHYRE-like combinatorial scenes in a real 2D rigid-body engine (pymunk).

A red ball plus 4 of 8 object types = C(8, 4) = 70 templates, split by
template (train on 6 / 30 / 60, test on 10 held out) and by variant (unseen
jitters of training templates), after "How Far is Video Generation from World
Model" (Kang et al., 2024; ``docs/REFERENCES.md`` section 1). Human raters are
replaced by an automatic abnormality detector.

- :mod:`.templates`: object types, templates, splits, variant layouts (pure, seed in).
- :mod:`.physics`: build and simulate a layout with pymunk -> per-frame part poses.
- :mod:`.render`: rasterise part poses to uint8 frames.
- :mod:`.dataset`: HDF5 shards + manifest (``collect_combinatorial``, ``CombinatorialDataset``).
- :mod:`.abnormality`: the abnormality detector, its calibration, corruptions, SSIM / PSNR.
- :mod:`.report`: in-template vs out-of-template table.

Nothing here is imported at ``import simlab`` (pymunk is imported by :mod:`.physics` only).
"""
