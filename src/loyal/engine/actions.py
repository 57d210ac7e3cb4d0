"""Next best action (R19, R12, R25): one action code per customer, with a priority.

Inputs
------
``next_best_action`` takes one row per customer with these columns (``action_inputs`` builds
the table from the per-customer table, the suggestions and the models' outputs):

- customer_id;
- stage: the lifecycle stage (``lifecycle.STAGES``);
- abc_class (A, B, C) and return_class (high, medium, low, negative), null for prospects;
- profit: profit after the cost to serve (null: none);
- frequency: paid orders (null: none, as for subscription-only customers);
- clv: customer lifetime value from the BTYD models (null where not modelled);
- risk: churn risk in [0, 1], the classifier's churn probability or 1 - P(alive) (null where
  not modelled; see ``churn_risk``);
- has_cross_sell, has_up_sell: the customer has a suggestion of that kind (null: false).

Flags
-----
- churned: stage = 'churned' or risk >= ``churned_risk``;
- at risk: not churned, and stage = 'at_risk' or risk >= ``at_risk_risk``;
- valuable: abc_class in ``valuable_abc_classes`` (A, B), or return_class in
  ``valuable_return_classes`` (high), or clv >= ``valuable_clv`` (when set);
- new: frequency <= ``new_customer_max_orders``; a null frequency (no paid orders, e.g. a
  subscription-only customer) is not new.

Decision table (the first matching row wins)
--------------------------------------------
==  =========================================  ===================  ===========================
#   when                                       action               why
==  =========================================  ===================  ===========================
1   return_class = 'negative'                  leave_alone          R12, 001 §IV: not kept at
                                                                    any price, even at risk
2   stage is prospect, potential_intent or     nurture              not a buyer yet
    intent
3   churned and valuable                       win_back             R25: lost customers are
                                                                    still assets
4   at risk and valuable                       retain_call          R19: value at risk
5   churned (not valuable)                     leave_alone          not worth a chase
6   abc_class = 'A', not at risk               value_added_service  R11: the fullest service
7   new                                        nurture              002: the critical window
8   has_cross_sell                             cross_sell           R17, R19: more services in
                                                                    use, harder to leave
9   has_up_sell                                up_sell              R19
10  otherwise                                  leave_alone          nothing to offer
==  =========================================  ===================  ===========================

Priority (R19: the call list is ordered by value at risk)
---------------------------------------------------------
value = clv when known, else max(profit, 0) (null profit: 0); risk' = risk when known, else by
stage: ``stage_risk_churned`` for churned, ``stage_risk_at_risk`` for at_risk,
``stage_risk_other`` otherwise (so that customers without a model still sort by value).
priority = value × risk', and 0 for leave_alone (nobody is to be chased there).
priority_rank numbers all customers by priority descending, ties by customer_id, 1 first.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

ACTIONS: tuple[str, ...] = (
    "retain_call",
    "win_back",
    "cross_sell",
    "up_sell",
    "value_added_service",
    "nurture",
    "leave_alone",
)
PROSPECT_STAGES: tuple[str, ...] = ("prospect", "potential_intent", "intent")
INPUT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "stage",
    "abc_class",
    "return_class",
    "profit",
    "frequency",
    "clv",
    "risk",
    "has_cross_sell",
    "has_up_sell",
)


@dataclass(frozen=True)
class ActionSettings:
    """Thresholds of the next-best-action rules (see the module docstring)."""

    # Model risk from which a customer counts as at risk / churned. They mirror the engine's
    # P(alive) thresholds (0.5 and 0.1): risk = 1 - P(alive).
    at_risk_risk: float = 0.5
    churned_risk: float = 0.9
    valuable_abc_classes: tuple[str, ...] = ("A", "B")
    valuable_return_classes: tuple[str, ...] = ("high",)
    # A CLV at or above this makes a customer valuable whatever the classes say (None: unused).
    valuable_clv: float | None = None
    new_customer_max_orders: int = 1
    # Risk assumed from the stage where no model gave one.
    stage_risk_churned: float = 1.0
    stage_risk_at_risk: float = 0.5
    stage_risk_other: float = 0.1

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not 0 <= self.at_risk_risk <= self.churned_risk <= 1:
            problems.append(
                "need 0 <= at_risk_risk <= churned_risk <= 1, got "
                f"{self.at_risk_risk!r} and {self.churned_risk!r}"
            )
        for name in ("stage_risk_churned", "stage_risk_at_risk", "stage_risk_other"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                problems.append(f"{name} must be in [0, 1], got {value!r}")
        if self.valuable_clv is not None and self.valuable_clv < 0:
            problems.append(f"valuable_clv must be >= 0 or None, got {self.valuable_clv!r}")
        if self.new_customer_max_orders < 0:
            problems.append(
                f"new_customer_max_orders must be >= 0, got {self.new_customer_max_orders!r}"
            )
        if problems:
            raise ValueError("invalid ActionSettings: " + "; ".join(problems))


def churn_risk(
    p_alive: ir.Table | None = None, churn_probability: ir.Table | None = None
) -> ir.Table:
    """Per customer: risk and risk_source, from whichever model scored the customer.

    ``churn_probability`` (customer_id, churn_probability) from the classifier wins where both
    exist: it is fitted on the contractual behaviour that makes P(alive) meaningless there.
    ``p_alive`` (customer_id, p_alive) from the BTYD models gives risk = 1 - p_alive.
    """
    parts: list[ir.Table] = []
    if churn_probability is not None:
        parts.append(
            churn_probability.select(
                "customer_id",
                risk=churn_probability.churn_probability.cast("float64"),
                risk_source=ibis.literal("classifier"),
            )
        )
    if p_alive is not None:
        btyd = p_alive.select(
            "customer_id",
            risk=1.0 - p_alive.p_alive.cast("float64"),
            risk_source=ibis.literal("btyd"),
        )
        if parts:
            btyd = btyd.anti_join(parts[0], "customer_id")
        parts.append(btyd)
    if not parts:
        raise ValueError("churn_risk needs p_alive, churn_probability or both; got neither")
    return parts[0] if len(parts) == 1 else parts[0].union(parts[1], distinct=False)


def action_inputs(
    customers: ir.Table,
    suggestions: ir.Table | None = None,
    risk: ir.Table | None = None,
    clv: ir.Table | None = None,
) -> ir.Table:
    """The input table of ``next_best_action`` (columns ``INPUT_COLUMNS``).

    ``customers`` has customer_id, stage, abc_class, return_class, profit, frequency (the
    per-customer table of ``run.customer_table``); ``suggestions`` is ``basket.suggestions``
    output; ``risk`` has customer_id, risk (``churn_risk``); ``clv`` has customer_id, clv.
    Missing tables leave their columns null.
    """
    t = customers.select("customer_id", "stage", "abc_class", "return_class", "profit", "frequency")
    if suggestions is not None:
        kinds = suggestions.group_by("customer_id").aggregate(
            s_cross=(suggestions.kind == "cross_sell").any(),
            s_up=(suggestions.kind == "up_sell").any(),
        )
        kinds = kinds.rename(s_id="customer_id")
        t = t.left_join(kinds, t.customer_id == kinds.s_id).drop("s_id")
        t = t.mutate(has_cross_sell=t.s_cross.fill_null(False), has_up_sell=t.s_up.fill_null(False))
        t = t.drop("s_cross", "s_up")
    else:
        t = t.mutate(has_cross_sell=ibis.literal(False), has_up_sell=ibis.literal(False))
    for name, table in (("risk", risk), ("clv", clv)):
        if table is None:
            t = t.mutate(**{name: ibis.null("float64")})
            continue
        part = table.select(j_id="customer_id", **{name: table[name].cast("float64")})
        t = t.left_join(part, t.customer_id == part.j_id).drop("j_id")
    return t.select(*INPUT_COLUMNS)


def next_best_action(inputs: ir.Table, settings: ActionSettings | None = None) -> ir.Table:
    """One action per customer by the decision table of the module docstring.

    ``inputs`` has the columns ``INPUT_COLUMNS``. Returns customer_id, action, priority,
    priority_rank and the reason inputs: value, value_basis (clv | profit), risk (the one
    used), risk_basis (model | stage), is_valuable, is_at_risk, is_churned, is_new, stage,
    abc_class, return_class, has_cross_sell, has_up_sell.
    """
    s = settings or ActionSettings()
    missing = [c for c in INPUT_COLUMNS if c not in inputs.columns]
    if missing:
        raise ValueError(
            f"next_best_action needs the columns {list(INPUT_COLUMNS)}; missing {missing}: "
            "build the table with action_inputs()"
        )
    t = inputs
    model_risk = t.risk.cast("float64")
    is_churned = ((t.stage == "churned") | (model_risk >= s.churned_risk)).fill_null(False)
    is_at_risk = ~is_churned & ((t.stage == "at_risk") | (model_risk >= s.at_risk_risk)).fill_null(
        False
    )
    valuable = t.abc_class.isin(s.valuable_abc_classes) | t.return_class.isin(
        s.valuable_return_classes
    )
    if s.valuable_clv is not None:
        valuable = valuable | (t.clv >= s.valuable_clv)
    t = t.mutate(
        is_churned=is_churned,
        is_at_risk=is_at_risk,
        is_valuable=valuable.fill_null(False),
        is_new=(t.frequency <= s.new_customer_max_orders).fill_null(False),
    )
    action = ibis.cases(
        ((t.return_class == "negative").fill_null(False), "leave_alone"),
        (t.stage.isin(PROSPECT_STAGES).fill_null(False), "nurture"),
        (t.is_churned & t.is_valuable, "win_back"),
        (t.is_at_risk & t.is_valuable, "retain_call"),
        (t.is_churned, "leave_alone"),
        ((t.abc_class == "A").fill_null(False) & ~t.is_at_risk, "value_added_service"),
        (t.is_new, "nurture"),
        (t.has_cross_sell.fill_null(False), "cross_sell"),
        (t.has_up_sell.fill_null(False), "up_sell"),
        else_="leave_alone",
    )
    stage_risk = ibis.cases(
        (t.is_churned, s.stage_risk_churned),
        (t.stage == "at_risk", s.stage_risk_at_risk),
        else_=s.stage_risk_other,
    )
    value = ibis.coalesce(t.clv.cast("float64"), ibis.greatest(t.profit.fill_null(0.0), 0.0))
    t = t.mutate(
        action=action,
        value=value,
        value_basis=ibis.cases((t.clv.notnull(), "clv"), else_="profit"),
        risk_used=ibis.coalesce(model_risk, stage_risk.cast("float64")),
        risk_basis=ibis.cases((model_risk.notnull(), "model"), else_="stage"),
    )
    t = t.mutate(priority=ibis.cases((t.action == "leave_alone", 0.0), else_=t.value * t.risk_used))
    w = ibis.window(order_by=[ibis.desc("priority"), "customer_id"])
    t = t.mutate(priority_rank=(ibis.row_number().over(w) + 1).cast("int64"))
    return t.select(
        "customer_id",
        "action",
        "priority",
        "priority_rank",
        "value",
        "value_basis",
        risk=t.risk_used,
        risk_basis=t.risk_basis,
        is_valuable=t.is_valuable,
        is_at_risk=t.is_at_risk,
        is_churned=t.is_churned,
        is_new=t.is_new,
        stage=t.stage,
        abc_class=t.abc_class,
        return_class=t.return_class,
        has_cross_sell=t.has_cross_sell.fill_null(False),
        has_up_sell=t.has_up_sell.fill_null(False),
    ).order_by("priority_rank")
