"""Video diffusion world model on the collision testbed (Kang et al. 2024 conditioning, diffusers backbones).

Given the first ``c`` frames of a video, generate the rest. Modules, one idea each:

- :mod:`.config`: ``VideoDiffusionConfig``, presets (``cpu-small``, ``gpu-s``, ``gpu-b``, ``gpu-latte``,
  ``gpu-latent``, ``debug``).
- :mod:`.model`: ``VideoDiffusionModel`` (diffusers ``ModelMixin`` + ``ConfigMixin``): UNet2DModel or DiT
  over frames stacked on channels, or a spatio-temporal Latte / CogVideoX transformer; ``load_model``.
- :mod:`.latent`: a frozen frame VAE (diffusers ``AutoencoderKL`` trained on the testbed) for latent
  diffusion (``latent_vae=DIR``).
- :mod:`.conditioning`: pixel <-> model space, condition video and mask.
- :mod:`.diffusion`: DDPM (zero terminal SNR, v- or x0-prediction), DDIM / Euler samplers, training loss.
- :mod:`.sampling`: ``generate`` from condition frames.
- :mod:`.data`: ``TrainStream`` (batches rendered from exact states), dataset/model checks.
- :mod:`.train`: ``train_video_diffusion`` with accelerate (run directory, resume, EMA, DDP).
- :mod:`.baselines`: repeat-last-frame and constant-velocity predictors.
- :mod:`.robust_parse`: a speckle-robust ball parser.
- :mod:`.evaluate`: ``evaluate_model`` behind ``simlab eval physics --model``.
- :mod:`.probes`: the velocity-gap and attribute-priority probes (``simlab eval gap-probe`` /
  ``attribute-probe``); :mod:`.scaling`: the data x model size grid (``simlab train video-diffusion-grid``).
- :mod:`.combinatorial_eval`: PHYRE-like scenes in and out of template (``simlab eval combinatorial``).

diffusers, accelerate and torch are imported by the submodules only, never by this
package or by ``import simlab``.
"""
