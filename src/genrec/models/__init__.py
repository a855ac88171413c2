"""Model registry: `--model NAME` finds the class here. A new model is one file plus one line."""

from __future__ import annotations

import importlib

from genrec.models.base import ModelConfig, Recommender

# name -> "module:Class"; imported lazily so `genrec --help` stays fast.
REGISTRY: dict[str, str] = {
    "pop": "genrec.models.pop:MostPopular",
    "ease": "genrec.models.ease:EASE",
    "sasrec": "genrec.models.sasrec:SASRec",
    "hstu": "genrec.models.hstu:HSTU",
    "multvae": "genrec.models.multvae:MultVAE",
    "multdae": "genrec.models.multvae:MultDAE",
    "cfgan": "genrec.models.cfgan:CFGAN",
    "tiger": "genrec.models.tiger:Tiger",
}


def get_model_class(name: str) -> type[Recommender]:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["REGISTRY", "ModelConfig", "Recommender", "get_model_class"]
