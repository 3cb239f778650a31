"""Error texts spell each setting the way the entry point in use sets it."""
from rns_ros.core.advice import API_SPELLING, CLI_SPELLING, AdvisedError, MissingWeightsError, explain, spell


def test_tokens_are_spelled_per_entry_point_and_other_errors_pass_through():
    err = MissingWeightsError("no weights: pass {checkpoint=/w.bin}, or try {backbone=test-tiny}")
    assert str(err) == "no weights: pass build_backbone(..., checkpoint='/w.bin'), or try build_backbone('test-tiny', ...)"
    assert explain(err, CLI_SPELLING) == "no weights: pass --checkpoint /w.bin, or try --backbone test-tiny"
    node = {"checkpoint": "-p checkpoint:={value}", "backbone": "-p backbone:={value}"}
    assert explain(err, node) == "no weights: pass -p checkpoint:=/w.bin, or try -p backbone:=test-tiny"
    assert isinstance(err, ValueError) and isinstance(err, AdvisedError)
    assert explain(RuntimeError("plain {not a token}"), CLI_SPELLING) == "plain {not a token}"


def test_every_entry_point_spells_every_setting():
    assert set(API_SPELLING) == set(CLI_SPELLING)
    for spelling in (API_SPELLING, CLI_SPELLING):
        assert all("{value}" in text for text in spelling.values())
        assert spell("{regions.checkpoint=x.pt}", spelling).count("x.pt") == 1
