"""Frozen-encoder token features: computed once, stored in fp16, reused by key."""

from evoformer.features.encoder import EncoderConfig, encoder_identity, load_encoder, resolve_encoder_path
from evoformer.features.featurize import FeaturizeResult, feature_key, featurize_splits
from evoformer.features.store import FeatureManifest, SplitFeatures, load_manifest, load_split_features

__all__ = [
    "EncoderConfig",
    "FeatureManifest",
    "FeaturizeResult",
    "SplitFeatures",
    "encoder_identity",
    "feature_key",
    "featurize_splits",
    "load_encoder",
    "load_manifest",
    "load_split_features",
    "resolve_encoder_path",
]
