"""Pipelines: experiments that chain stages across the layers (collect -> train -> dream ->
evaluate -> report). Each stage calls a function of envs/, world_models/ or policies/; a
pipeline owns only the stage order, checkpointing and the report. Imported lazily by the CLI."""
