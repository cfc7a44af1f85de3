"""The documented rules that decide when the model path cannot.

Used when no model is loaded, the model raised, Redis is down or slow, or the
caller's deadline is too short for the model path. Amount rules always apply;
velocity rules apply when the card's stored features could be read (the counts
are the stored ones plus the current transaction).

=========================  ==========================================  ========
rule (reason code)         condition                                   decision
=========================  ==========================================  ========
RULE_AMOUNT_VERY_HIGH      amount >= decline_amount (10,000)           DECLINE
RULE_VELOCITY_10M          card transactions in 10 min >= 10           DECLINE
RULE_AMOUNT_HIGH           amount >= review_amount (1,000)             REVIEW
RULE_VELOCITY_1H           card transactions in 1 h >= 8               REVIEW
RULE_SPEND_1D              card spend in 1 day >= review_daily_spend   REVIEW
(none)                     otherwise                                   APPROVE
=========================  ==========================================  ========

The rule score is 1.0 for DECLINE, 0.5 for REVIEW and 0.0 for APPROVE: a coarse
stand-in, marked by route = fallback, never a calibrated probability.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.scoring.decision import APPROVE, DECLINE, REVIEW

_SCORE = {APPROVE: 0.0, REVIEW: 0.5, DECLINE: 1.0}


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What the rules decided and why."""

    decision: int
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class FallbackRules:
    """Amount and velocity rules (thresholds in the currency's major units).

    Examples:
        >>> rules = FallbackRules()
        >>> rules.decide(25.0, None).decision == APPROVE
        True
        >>> out = rules.decide(2_500.0, {"card_tx_count_10m": 12.0})
        >>> out.decision == DECLINE, out.reasons
        (True, ('RULE_VELOCITY_10M', 'RULE_AMOUNT_HIGH'))
    """

    decline_amount: float = 10_000.0
    review_amount: float = 1_000.0
    decline_count_10m: int = 10
    review_count_1h: int = 8
    review_daily_spend: float = 5_000.0

    def decide(self, amount: float, card: Mapping[str, float] | None) -> RuleOutcome:
        """Apply the rules to a transaction's amount and its card's stored features."""
        declines: list[str] = []
        reviews: list[str] = []
        if amount >= self.decline_amount:
            declines.append("RULE_AMOUNT_VERY_HIGH")
        if card is not None and card.get("card_tx_count_10m", 0.0) + 1 >= self.decline_count_10m:
            declines.append("RULE_VELOCITY_10M")
        if amount >= self.review_amount:
            reviews.append("RULE_AMOUNT_HIGH")
        if card is not None:
            if card.get("card_tx_count_1h", 0.0) + 1 >= self.review_count_1h:
                reviews.append("RULE_VELOCITY_1H")
            if card.get("card_amount_sum_1d", 0.0) + amount >= self.review_daily_spend:
                reviews.append("RULE_SPEND_1D")
        decision = DECLINE if declines else REVIEW if reviews else APPROVE
        return RuleOutcome(decision, _SCORE[decision], tuple(declines + reviews))
