"""Buy-till-you-die models: who is still a customer, what they will buy, what they are worth.

- :class:`BetaGeoModel` (BG/NBD) and :class:`ParetoNBDModel` (Pareto/NBD) model repeat
  purchases; :class:`GammaGammaModel` models spend per purchase.
- :mod:`~loyal.engine.btyd.clv` combines them into customer lifetime value.
- :mod:`~loyal.engine.btyd.validation` checks a model against a holdout window.

The models take per-customer NumPy arrays (frequency, recency, T, monetary_value) as made by
``loyal.engine.summary.customer_summary``; optional ``weights`` count customers per row, so
distinct rows from ``loyal.engine.summary.rfm_patterns`` fit faster to the same estimates.
"""

from __future__ import annotations

from loyal.engine.btyd._fitting import ConvergenceWarning, NotFittedError, group_histories
from loyal.engine.btyd.bgnbd import (
    BetaGeoModel,
    BetaGeoParams,
    bgnbd_customer_log_likelihood,
    bgnbd_log_likelihood,
)
from loyal.engine.btyd.clv import (
    customer_equity,
    customer_lifetime_value,
    discounted_expected_purchases,
    score_customers,
)
from loyal.engine.btyd.gammagamma import (
    GammaGammaModel,
    GammaGammaParams,
    gamma_gamma_customer_log_likelihood,
)
from loyal.engine.btyd.paretonbd import (
    ParetoNBDModel,
    ParetoNBDParams,
    paretonbd_log_likelihood,
)
from loyal.engine.btyd.validation import (
    HoldoutComparison,
    SpendComparison,
    compare_holdout,
    compare_holdout_spend,
    holdout_predictions,
    tracking_curve,
)

__all__ = [
    "BetaGeoModel",
    "BetaGeoParams",
    "ConvergenceWarning",
    "GammaGammaModel",
    "GammaGammaParams",
    "HoldoutComparison",
    "NotFittedError",
    "ParetoNBDModel",
    "ParetoNBDParams",
    "SpendComparison",
    "bgnbd_customer_log_likelihood",
    "bgnbd_log_likelihood",
    "compare_holdout",
    "compare_holdout_spend",
    "customer_equity",
    "customer_lifetime_value",
    "discounted_expected_purchases",
    "gamma_gamma_customer_log_likelihood",
    "group_histories",
    "holdout_predictions",
    "paretonbd_log_likelihood",
    "score_customers",
    "tracking_curve",
]
