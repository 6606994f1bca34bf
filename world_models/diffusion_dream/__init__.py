"""DIAMOND-style diffusion world model (issue 12): an action-conditioned next-frame denoiser.

Modules, one idea each:

- :mod:`.model`: ``ActionFrameDenoiser`` (diffusers ``UNet2DModel`` over the noisy next frame stacked
  with the last 4 frames, actions through adaptive group norm, EDM preconditioning), ``edm_loss``,
  ``RewardDoneHead`` (reward and termination of a transition); both diffusers ``ModelMixin`` +
  ``ConfigMixin``.
- :mod:`.world_model`: ``DiffusionWorldModel`` (denoiser + head + real start contexts; save/load
  without pickles), ``karras_sigmas`` (diffusers' ``EDMEulerScheduler`` levels), ``sample_next``
  (Euler sampling, 3 steps by default).
- :mod:`.dream`: ``DiffusionDreamEnv`` / ``DiffusionDreamVecEnv``, the dreams as gymnasium envs
  (``model.as_env()`` / ``model.as_vec_env(n)``).
- :mod:`.data`: real episodes -> training windows; frame down/up-scaling.
- :mod:`.train`: ``DiffusionDreamTrainConfig``, ``train_diffusion_dream`` (run directory, resume,
  NaN stop).

torch and diffusers are imported by the submodules only, never by this package or ``import simlab``.
"""
