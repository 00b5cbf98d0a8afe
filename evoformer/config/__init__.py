"""Every setting of EvoFormer, declared once, as a tree of pydantic models.

The parameter model of each flow lives here, next to the leaf configs it is made of; the flows,
the CLI (``flows/cli``, derived from these models), the GUI and the deployments all build these
models and nothing else. Importing this package loads pydantic and PyYAML only: never torch,
Prefect, transformers, pandas or openai, so the command line can show help and parse options fast.

- :mod:`evoformer.config.llm`: :class:`LLMConfig`, the shared LLM client's endpoint, retries, prices, budget;
- :mod:`evoformer.config.data`: data source, split, encoder, baselines, storage; :class:`PrepareDataParams`;
- :mod:`evoformer.config.train`: :class:`TrainProgramParams` (one program, flow ``train_program``);
- :mod:`evoformer.config.runners`: :class:`RunnerConfig` (which task runner trains candidates);
- :mod:`evoformer.config.compress`: :class:`CompressParams` and :class:`CompressTrigger`;
- :mod:`evoformer.config.evolve`: :class:`OperatorConfig` and :class:`EvolveParams`;
- :mod:`evoformer.config.synthesize`: import, generation, gates and balance; :class:`SynthesizeParams`;
- :mod:`evoformer.config.pipeline`: :class:`PipelineParams`;
- :mod:`evoformer.config.files`: YAML files of these models (``configs/*.yaml``).
"""

from evoformer.config.compress import CompressParams, CompressTrigger
from evoformer.config.data import BaselineConfig, DataSourceConfig, EncoderConfig, PrepareDataParams, SplitConfig
from evoformer.config.evolve import EvolveParams, OperatorConfig
from evoformer.config.files import CONFIGS_DIR, load_params, read_config, write_config
from evoformer.config.llm import LLMConfig
from evoformer.config.pipeline import CompressionStep, PipelineParams, SynthesisStep
from evoformer.config.runners import RunnerConfig
from evoformer.config.synthesize import (
    BalanceConfig,
    GateConfig,
    GenerationConfig,
    ImportConfig,
    SynthesisSettings,
    SynthesizeParams,
)
from evoformer.config.train import TrainProgramParams

__all__ = [
    "BalanceConfig",
    "BaselineConfig",
    "CONFIGS_DIR",
    "CompressParams",
    "CompressTrigger",
    "CompressionStep",
    "DataSourceConfig",
    "EncoderConfig",
    "EvolveParams",
    "GateConfig",
    "GenerationConfig",
    "ImportConfig",
    "LLMConfig",
    "OperatorConfig",
    "PipelineParams",
    "PrepareDataParams",
    "RunnerConfig",
    "SplitConfig",
    "SynthesisSettings",
    "SynthesisStep",
    "SynthesizeParams",
    "TrainProgramParams",
    "load_params",
    "read_config",
    "write_config",
]
