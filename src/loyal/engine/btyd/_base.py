"""The estimator shape shared by the BTYD models (scikit-learn style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from loyal.engine.btyd._fitting import FitResult, NotFittedError, delta_method, maximise

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Params:
    """Named model parameters; subclasses list them as fields in the paper's order."""

    def as_array(self) -> FloatArray:
        """The values in field order."""
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        """The values by name."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Field names in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_array(cls, values: ArrayLike) -> Self:
        """Build from values in field order."""
        arr = np.asarray(values, dtype=np.float64)
        return cls(*(float(v) for v in arr))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            # NaN is allowed: standard errors use the same class and may be undefined.
            if not (value > 0 or np.isnan(value)):
                raise ValueError("{} must be positive, got {}={!r}.".format(f.name, f.name, value))


P = TypeVar("P", bound=Params)


class Model(Generic[P]):
    """Base estimator: ``fit(...) -> self``; learned attributes end in ``_``."""

    params_class: ClassVar[type[Params]]
    fit_signature: ClassVar[str]
    max_iter: int
    # The log-likelihood over log-parameters with its gradient, and with its Hessian too, for
    # models fitted by ``_maximise`` (data is the model's own prepared histories).
    log_likelihood_function: ClassVar[Callable[..., tuple[float, FloatArray]]]
    log_likelihood_hessian_function: ClassVar[Callable[..., tuple[float, FloatArray, FloatArray]]]

    def _maximise(self, data: Any, start: FloatArray, shift: FloatArray, tol: float) -> FitResult:
        """Maximum likelihood from ``start`` (log-parameters relative to ``shift``)."""
        log_likelihood = type(self).log_likelihood_function
        log_likelihood_hessian = type(self).log_likelihood_hessian_function

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            value, grad = log_likelihood(theta + shift, data)
            return -value, -grad

        def with_hessian(theta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
            value, grad, hess = log_likelihood_hessian(theta + shift, data)
            return -value, -grad, -hess

        return maximise(
            objective,
            start,
            names=self.params_class.names(),
            scale=float(data.weights.sum()),
            tol=tol,
            max_iter=self.max_iter,
            with_hessian=with_hessian,
        )

    params_: P
    standard_errors_: P
    covariance_: FloatArray
    log_likelihood_: float
    n_customers_: float
    converged_: bool
    n_iter_: int

    def _require_fitted(self) -> P:
        params = getattr(self, "params_", None)
        if params is None:
            raise NotFittedError(
                "{} is not fitted yet: call {} first, or build it with from_params().".format(
                    type(self).__name__, self.fit_signature
                )
            )
        return params

    def _store(self, result: FitResult, log_scale: FloatArray, n_customers: float) -> None:
        """Set the learned attributes from an optimum found on scaled data."""
        log_params = result.log_params + log_scale
        cov, se = delta_method(log_params, result.hessian)
        self.params_ = self.params_class.from_array(np.exp(log_params))  # type: ignore[assignment]
        self.standard_errors_ = _unchecked(self.params_class, se)  # type: ignore[assignment]
        self.covariance_ = cov
        self.n_customers_ = float(n_customers)
        self.converged_ = result.converged
        self.n_iter_ = result.iterations

    @classmethod
    def from_params(cls, params: P, **settings: Any) -> Self:
        """A model with known parameters (e.g. stored from an earlier fit), ready to predict."""
        if not isinstance(params, cls.params_class):
            raise TypeError(
                "{} needs {} parameters, got {!r}.".format(
                    cls.__name__, cls.params_class.__name__, params
                )
            )
        model = cls(**settings)
        model.params_ = params
        nan = np.full(len(params.names()), np.nan)
        model.standard_errors_ = _unchecked(cls.params_class, nan)  # type: ignore[assignment]
        model.covariance_ = np.full((nan.shape[0], nan.shape[0]), np.nan)
        model.log_likelihood_ = float("nan")
        model.n_customers_ = float("nan")
        model.converged_ = True
        model.n_iter_ = 0
        return model

    def __repr__(self) -> str:
        params = getattr(self, "params_", None)
        if params is None:
            return "{}() [not fitted]".format(type(self).__name__)
        inner = ", ".join("{}={:.4g}".format(k, v) for k, v in params.as_dict().items())
        return "{}({})".format(type(self).__name__, inner)


def _unchecked(cls: type[Params], values: FloatArray) -> Params:
    """A Params instance without the positivity check (standard errors may be NaN or 0)."""
    obj = object.__new__(cls)
    for f, v in zip(fields(cls), values, strict=True):
        object.__setattr__(obj, f.name, float(v))
    return obj
