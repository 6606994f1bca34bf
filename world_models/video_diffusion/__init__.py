"""Video diffusion world model on the collision testbed (Kang et al. 2024 conditioning, diffusers backbones).

Given the first ``c`` frames of a video, generate the rest. Modules, one idea each:

- :mod:`.config`: ``VideoDiffusionConfig``, presets (``cpu-small``, ``gpu-s``, ``gpu-b``, ``debug``).
- :mod:`.model`: ``VideoDiffusionModel`` (diffusers ``ModelMixin`` + ``ConfigMixin``), UNet2DModel or DiT
  over frames stacked on channels; ``load_model``.
- :mod:`.conditioning`: pixel <-> model space, condition video and mask.
- :mod:`.diffusion`: DDPM (zero terminal SNR, v- or x0-prediction), DDIM sampler, training loss.
- :mod:`.sampling`: ``generate`` from condition frames.
- :mod:`.data`: ``TrainStream`` (batches rendered from exact states), dataset/model checks.
- :mod:`.train`: ``train_video_diffusion`` with accelerate (run directory, resume, EMA, DDP).
- :mod:`.baselines`: repeat-last-frame and constant-velocity predictors.
- :mod:`.robust_parse`: a speckle-robust ball parser.
- :mod:`.evaluate`: ``evaluate_model`` behind ``simlab eval physics --model``.

diffusers, accelerate and torch are imported by the submodules only, never by this
package or by ``import simlab``.
"""
