"""The potential: committee networks, the committee and its predictions, training, the
ASE calculator, the evaluation against labels, equation-of-state fits, the LAMMPS model file
and plugin, the n2p2 import.
Names load lazily (:mod:`alip._lazy`); the modules themselves hold the full API."""

from alip._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "Committee": "alip.models.committee",
    "Prediction": "alip.models.committee",
    "CommitteeNetwork": "alip.models.networks",
    "TrainConfig": "alip.models.training",
    "TrainResult": "alip.models.training",
    "train_committee": "alip.models.training",
    "Calculator": "alip.models.calculator",
    "evaluate": "alip.models.evaluation",
    "Evaluation": "alip.models.evaluation",
    "fit_eos": "alip.models.eos",
    "ev_curve": "alip.models.eos",
    "export_committee": "alip.models.lammps",
    "import_n2p2": "alip.models.n2p2",
}

__all__ = list(_LAZY)
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
