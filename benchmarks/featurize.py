"""Featurizer throughput against a plain `transformers` encode of the same pairs, in one run.

Prints pairs/s for:
  * plain-maxlen:  transformers, file order, padding to max_length (the naive way);
  * plain-dynamic: transformers, file order, padding to the longest pair of each batch;
  * ours-cold:     evoformer featurize (length-sorted batches, dynamic padding, fp16 to disk),
                   including loading the encoder and writing the cache;
  * ours-cached:   the same call again, served from the cache;
and the ratios ours/plain and cold/cached. Usage: python benchmarks/featurize.py [--pairs N]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from evoformer.data import DataSourceConfig, load_pairs
from evoformer.data.splits import fingerprint
from evoformer.features import EncoderConfig, featurize_splits, load_encoder


def plain_encode(frame, tokenizer, model, config: EncoderConfig, padding: str) -> float:
    """Seconds to encode all pairs in file order with the given padding strategy."""
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(frame), config.batch_size):
            chunk = frame.iloc[i : i + config.batch_size]
            inputs = tokenizer(
                chunk["claim"].tolist(),
                chunk["evidence"].tolist(),
                truncation=True,
                max_length=config.max_length,
                padding=padding,
                return_tensors="pt",
            )
            model(**inputs).last_hidden_state.to(torch.float16)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=None, help="data source (default: the shared Climate-FEVER file)")
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    frame = load_pairs(DataSourceConfig(source=args.source)).frame.head(args.pairs).reset_index(drop=True)
    config = EncoderConfig()
    tokenizer, model = load_encoder(config.encoder)
    plain_encode(frame.head(config.batch_size), tokenizer, model, config, "longest")  # warm-up

    results = {
        "plain-maxlen": plain_encode(frame, tokenizer, model, config, "max_length"),
        "plain-dynamic": plain_encode(frame, tokenizer, model, config, "longest"),
    }
    splits, fingerprints = {"bench": frame}, {"bench": fingerprint(frame)}
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        cold = featurize_splits(splits, fingerprints, config, cache, progress=False)
        results["ours-cold"] = time.perf_counter() - start
        start = time.perf_counter()
        warm = featurize_splits(splits, fingerprints, config, cache, progress=False)
        results["ours-cached"] = time.perf_counter() - start
        assert not cold.reused and warm.reused

    n = len(frame)
    print(f"pairs={n} max_length={config.max_length} batch={config.batch_size} threads={args.threads}")
    print(f"{'variant':<14} {'seconds':>9} {'pairs/s':>10}")
    for name, seconds in results.items():
        print(f"{name:<14} {seconds:>9.3f} {n / seconds:>10.1f}")
    print(f"speed-up ours-cold vs plain-maxlen:  {results['plain-maxlen'] / results['ours-cold']:.2f}x")
    print(f"speed-up ours-cold vs plain-dynamic: {results['plain-dynamic'] / results['ours-cold']:.2f}x")
    print(f"speed-up cached vs cold:             {results['ours-cold'] / results['ours-cached']:.0f}x")


if __name__ == "__main__":
    main()
