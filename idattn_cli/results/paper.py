"""Numbers reported in "Interdomain Attention: Beyond Token-Level Key-Value Memory" (Kiyohara et al.,
arXiv:2605.24330 v1), for `idattn results --paper`.

Each table is a list of records with the same keys as the user's rows that it compares with, so it
can be joined on them. Values the authors only plotted (350M and 760M perplexities, S4D-only at 1.3B)
were read off their figure and are about +-1%; `approximate` marks them.
"""

MIXERS = ("softmax", "interdomain", "s4d")

# Validation perplexity on FineWeb-Edu after ~20 tokens per parameter (2.5B, 7B, 15B, 26B tokens).
VALIDATION_PPL = [
    {"model": "125m", "mixer": "softmax", "val_ppl": 16.65, "approximate": False},
    {"model": "125m", "mixer": "interdomain", "val_ppl": 16.48, "approximate": False},
    {"model": "125m", "mixer": "s4d", "val_ppl": 19.22, "approximate": False},
    {"model": "350m", "mixer": "softmax", "val_ppl": 12.2, "approximate": True},
    {"model": "350m", "mixer": "interdomain", "val_ppl": 11.5, "approximate": True},
    {"model": "350m", "mixer": "s4d", "val_ppl": 13.5, "approximate": True},
    {"model": "760m", "mixer": "softmax", "val_ppl": 10.1, "approximate": True},
    {"model": "760m", "mixer": "interdomain", "val_ppl": 8.95, "approximate": True},
    {"model": "760m", "mixer": "s4d", "val_ppl": 10.7, "approximate": True},
    {"model": "1.3b", "mixer": "softmax", "val_ppl": 8.63, "approximate": False},
    {"model": "1.3b", "mixer": "interdomain", "val_ppl": 7.98, "approximate": False},
    {"model": "1.3b", "mixer": "s4d", "val_ppl": 9.13, "approximate": True},
]

# Table 3: parameter counts.
PARAMETERS = [
    {"model": model, "mixer": mixer, "n_params": count}
    for model, counts in {
        "125m": (134_105_856, 135_416_208, 135_425_424),
        "350m": (373_867_520, 377_360_768, 377_385_344),
        "760m": (777_856_512, 781_498_752, 781_523_328),
        "1.3b": (1_345_423_360, 1_352_406_784, 1_352_455_936),
    }.items()
    for mixer, count in zip(MIXERS, counts)
]

# Table 4: the ablation cube at 125M after 2.5B tokens, keyed by the cube recipe of each cell.
CUBE = [
    {"cell": "full", "recipe": "cube_full", "val_loss": 2.8020, "val_ppl": 16.48},
    {"cell": "cube_full_norope", "recipe": "cube_full_norope", "val_loss": 2.8038, "val_ppl": 16.51},
    {"cell": "cube_softmax", "recipe": "cube_softmax", "val_loss": 2.8122, "val_ppl": 16.65},
    {"cell": "cube_generic_query", "recipe": "cube_generic_query", "val_loss": 2.8298, "val_ppl": 16.94},
    {"cell": "cube_s4d", "recipe": "cube_s4d", "val_loss": 2.9561, "val_ppl": 19.22},
    {"cell": "cube_s4d_rope", "recipe": "cube_s4d_rope", "val_loss": 2.9844, "val_ppl": 19.77},
    {"cell": "cube_dualkv_linear", "recipe": "cube_dualkv_linear", "val_loss": 3.0048, "val_ppl": 20.18},
]
# The same cells under the single-switch components of `idattn ablate`.
CUBE_CELL_ALIASES = {
    ("rope", "rope=false"): "cube_full_norope",
    ("dual_kv_input", "input=generic"): "cube_generic_query",
    ("query_projection", "readout=linear"): "cube_dualkv_linear",
}

# Zero-shot downstream results at 1.3B (lm-evaluation-harness; acc_norm for HellaSwag and ARC-c),
# keyed by lm-eval task name and metric. Accuracies are fractions, as lm-eval reports them.
_DOWNSTREAM = {
    ("lambada_openai", "acc"): (0.3943, 0.4436, 0.2564),
    ("piqa", "acc"): (0.6942, 0.7138, 0.7100),
    ("hellaswag", "acc_norm"): (0.4853, 0.5427, 0.4934),
    ("winogrande", "acc"): (0.5422, 0.5785, 0.5383),
    ("arc_easy", "acc"): (0.6587, 0.6991, 0.6086),
    ("arc_challenge", "acc_norm"): (0.3302, 0.3746, 0.3336),
    ("social_iqa", "acc"): (0.4028, 0.4145, 0.4110),
    ("boolq", "acc"): (0.6128, 0.5963, 0.6037),
    ("average", "acc"): (0.5151, 0.5454, 0.4944),
    ("lambada_openai", "perplexity"): (21.03, 14.76, 41.02),
    ("wikitext", "word_perplexity"): (20.55, 19.77, 25.27),
    ("wikitext", "bits_per_byte"): (0.8156, 0.8051, 0.8713),
}
DOWNSTREAM = [
    {"model": "1.3b", "mixer": mixer, "task": task, "metric": metric, "value": value}
    for (task, metric), values in _DOWNSTREAM.items()
    for mixer, value in zip(MIXERS, values)
]

# Length extrapolation at 1.3B trained at 4,096 tokens: mean perplexity over PG19, CodeParrot,
# GovReport, Qasper and QMSum at 1x, 2x and 3.5x the training context.
EXTRAPOLATION = [
    {"model": "1.3b", "mixer": mixer, "factor": factor, "ppl": ppl}
    for mixer, values in {"softmax": (12.79, 20.54, 55.92), "interdomain": (14.36, 14.14, 14.26),
                          "s4d": (27.24, 26.89, 26.75)}.items()
    for factor, ppl in zip((1.0, 2.0, 3.5), values)
]

TABLES = {"runs": VALIDATION_PPL, "parameters": PARAMETERS, "ablations": CUBE, "eval": DOWNSTREAM,
          "extrapolation": EXTRAPOLATION}
