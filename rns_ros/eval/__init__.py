"""The evaluation harness: dataset readers, the few-shot support protocol, methods and baselines,
metrics, a feature cache and reports; its command line `rns-eval` is rns_ros/cli/eval.py. See
docs/eval.md.

    from rns_ros.eval import EvalConfig, run_evaluation
    results = run_evaluation(EvalConfig(datasets=("camvid",), root="data/camvid", out="output/camvid"))
"""
from rns_ros.eval.datasets import DATASETS, Sample, SegmentationDataset, build_dataset
from rns_ros.eval.methods import METHOD_NAMES, MethodOptions, build_method
from rns_ros.eval.metrics import ConfusionMatrix, PanopticQuality
from rns_ros.eval.runner import EvalConfig, run_evaluation
from rns_ros.eval.sampling import SamplingConfig, SupportSample, sample_support
from rns_ros.eval.settings import SupportSetting

__all__ = [
    "ConfusionMatrix", "DATASETS", "EvalConfig", "METHOD_NAMES", "MethodOptions", "PanopticQuality",
    "Sample", "SamplingConfig", "SegmentationDataset", "SupportSample", "SupportSetting",
    "build_dataset", "build_method", "run_evaluation", "sample_support",
]
