"""The model selector's decision rule, on its own: the pipeline tests (test_local_runs, test_composer,
test_compile) cover the component inside real runs; these cover the cases a small real run cannot pick."""

from __future__ import annotations

from pipeline.components.model_selection import CandidateScore, choose


def test_highest_blessed_score_wins_even_if_an_unblessed_one_scores_higher():
    scores = [
        CandidateScore("wide_and_deep", blessed=True, score=0.91, baseline_score=0.90),
        CandidateScore("dnn", blessed=False, score=0.95, failures=("auc changed by -0.0200 vs. the baseline",)),
        CandidateScore("linear", blessed=True, score=0.93, baseline_score=0.90),
    ]
    selection = choose(scores, "auc")
    assert selection.winner == "linear"
    assert selection.reason.startswith("linear has the highest auc (0.9300) of the blessed candidates")
    assert "others: wide_and_deep 0.9100" in selection.reason
    assert "the previous blessed model scored 0.9000" in selection.reason
    assert "dnn not blessed (auc changed by -0.0200 vs. the baseline)" in selection.reason


def test_a_tie_goes_to_the_candidate_listed_first():
    scores = [CandidateScore("dnn", True, 0.9), CandidateScore("wide_and_deep", True, 0.9)]
    assert choose(scores, "auc").winner == "dnn"
    assert choose(list(reversed(scores)), "auc").winner == "wide_and_deep"


def test_no_blessed_candidate_means_no_winner_and_says_why_for_each():
    scores = [
        CandidateScore("wide_and_deep", False, 0.61, failures=("auc 0.6100 is below the minimum 0.7",)),
        CandidateScore("linear", False, None),  # its Evaluator wrote no metrics
    ]
    selection = choose(scores, "auc")
    assert selection.winner is None
    assert selection.reason == (
        "no candidate was blessed, so nothing is pushed: wide_and_deep not blessed (auc 0.6100 is below the "
        "minimum 0.7); linear not blessed (below the thresholds)"
    )


def test_a_blessed_candidate_without_the_metric_cannot_win():
    scores = [CandidateScore("wide_and_deep", True, None), CandidateScore("linear", True, 0.8)]
    selection = choose(scores, "binary_accuracy")
    assert selection.winner == "linear"
    assert "(no other blessed candidate has a score)" in selection.reason
