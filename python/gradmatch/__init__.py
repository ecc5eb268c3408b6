"""gradmatch for PyTorch users: write gradmatch equation files from your own
training (endpoints and trajectory rows), run ``gradmatch fit`` and read a
study's outputs.

    EquationWriter      endpoints (model at its current parameters) -> file
    TrajectoryRecorder  the paper's trajectory rows (Eq. 4-6) in your loop
    fit                 runs ``gradmatch fit`` and returns its JSON result
    read_results        a study's summary.json, run_info.json, results.h5

Conventions: theta is the selected parameters flattened in registration
order; grad_loss is the full-batch MEAN loss gradient in eval mode, float64;
the regression target is b = -grad_loss; ridge is R = lambda sum theta^2, so
``torch.optim.SGD(weight_decay=2 * lambda)`` trains with ridge lambda.
"""
from .equations import EquationWriter, read_equations
from .runner import GradmatchError, GradmatchWarning, StudyResults, fit, find_executable, read_results
from .trajectory import TrajectoryRecorder, log_spaced_steps

__version__ = "0.1.0"
__all__ = ["EquationWriter", "read_equations", "TrajectoryRecorder", "log_spaced_steps", "fit", "read_results",
           "StudyResults", "GradmatchError", "GradmatchWarning", "find_executable"]
