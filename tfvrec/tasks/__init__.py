"""tfrs tasks: an objective (loss) plus its metrics, passed in."""
from tfvrec.tasks.pairwise_ranking import PairwiseAccuracy, PairwiseRankingTask

__all__ = ["PairwiseRankingTask", "PairwiseAccuracy"]
