"""A served graph's relation phrases: encoded each way, re-encoded when their words change."""

import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, RelationRecord, TripleRecord
from graphfuse.server.core import state as state_module
from graphfuse.server.core.state import GraphState

DIMENSIONS = 4


def fake_vectors(texts: list[str]) -> torch.Tensor:
    """A distinct unit vector per text (stands in for the encoder)."""
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(len(texts), DIMENSIONS, generator=generator)
    return vectors / vectors.norm(dim=-1, keepdim=True)


def loaded(triples: list[TripleRecord]) -> GraphState:
    state = GraphState("films", KnowledgeGraph([], triples), DIMENSIONS)
    names = state.names_to_embed()
    state.set_name_vectors(names, fake_vectors(names.texts))
    return state


def test_every_relation_is_phrased_each_way_and_encoded():
    state = loaded([TripleRecord("Heat", "directed_by", "Michael Mann")])
    relations = state.relations
    assert relations.names.shape == (1, DIMENSIONS) and relations.answers.shape == (2, DIMENSIONS)
    assert relations.text_direction.tolist() == [0, 1]  # "directed by", then "directed"
    record, phrases = state.relation_words(10)[0]
    assert record == RelationRecord("directed_by") and phrases.inverse == ("directed",)


def test_a_relation_record_re_phrases_its_relation():
    state = loaded([TripleRecord("Heat", "rel_7", "Michael Mann")])
    _, names = state.apply([RelationRecord("rel_7", "directed by", aliases=("helmed by",))])
    assert names.relations == [0] and "helmed by" in names.texts
    state.set_name_vectors(names, fake_vectors(names.texts))
    assert state.relations.text_direction.tolist() == [0, 0, 1]  # the alias is a second forward phrase
    _, again = state.apply([RelationRecord("rel_7", aliases=("helmed by",))])
    assert again.relations == []  # nothing changed: nothing to encode


def test_new_kinds_re_phrase_relations():
    state = loaded([TripleRecord("aspirin", "treats", "headache")])
    assert state.relation_words(1)[0][1].forward == ("treats",)
    kinds = [EntityRecord("aspirin", type="Compound"), EntityRecord("headache", type="Disease")]
    _, names = state.apply(kinds)
    assert names.phrases[0].forward == ("compound treats disease",)


def test_a_relation_that_outgrew_its_phrases_is_phrased_again_once_updates_pause(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("graphfuse.server.core.state.time.monotonic", lambda: clock[0])
    state = loaded([TripleRecord("Heat", "directed_by", "Michael Mann")])
    before = state.relation_words(1)[0][1]
    _, names = state.apply([TripleRecord(f"film {i}", "directed_by", "Ridley Scott") for i in range(4)])
    assert names.relations == [] and state.phrases_outgrown  # the ingest does not wait for them
    assert state.outgrown_wait(clock[0]) == state_module.OUTGROWN_QUIET_S
    clock[0] += 0.5
    state.apply([TripleRecord("film 9", "directed_by", "Ridley Scott")])  # still loading: later again
    assert state.outgrown_wait(clock[0]) == state_module.OUTGROWN_QUIET_S
    assert state.outgrown_wait(clock[0] + state_module.OUTGROWN_QUIET_S) == 0.0
    again = state.outgrown_phrases()
    assert again.relations == [0] and not state.phrases_outgrown
    assert "Ridley Scott" in again.phrases[0].forward_answers != before.forward_answers
    described = state.names_to_embed((), [0])  # described meanwhile: its vectors are the ones kept
    state.set_name_vectors(described, fake_vectors(described.texts))
    state.set_name_vectors(again, -fake_vectors(again.texts))
    assert torch.equal(state.relations.names[0], fake_vectors(described.texts)[0])


def test_outgrown_relations_are_phrased_under_a_steady_stream_of_updates_too(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("graphfuse.server.core.state.time.monotonic", lambda: clock[0])
    state = loaded([TripleRecord("Heat", "directed_by", "Michael Mann")])
    for i in range(int(state_module.OUTGROWN_MAX_WAIT_S) + 1):
        state.apply([TripleRecord(f"film {i}", "directed_by", "Ridley Scott")])
        clock[0] += 1.0
    assert state.phrases_outgrown and state.outgrown_wait(clock[0]) == 0.0


def test_entity_names_wait_in_a_queue_and_a_rename_meanwhile_is_embedded_again():
    state = loaded([TripleRecord("Heat", "directed_by", "Michael Mann")])
    update, names = state.apply([EntityRecord("Heat", "Heat (1995)"), EntityRecord("user:7", type="user")])
    assert names.entities == [] and state.names_pending == 1  # `user:7` has no words to embed
    assert state.name_progress() == (0, 1)
    taken = state.next_names(10)
    assert taken.texts == ["Heat (1995)"] and state.names_pending == 1  # in flight
    state.apply([EntityRecord("Heat", "Heat, the film")])  # renamed while its old name was being embedded
    heat = state.graph.entity_index["Heat"]
    before = state.entity_vectors[heat].clone()
    state.set_queued_vectors(taken, -fake_vectors(taken.texts))
    torch.testing.assert_close(state.entity_vectors[heat], before)  # the stale name's vector is not kept
    again = state.next_names(10)
    assert again.texts == ["Heat, the film"]
    state.set_queued_vectors(again, -fake_vectors(again.texts))
    torch.testing.assert_close(state.entity_vectors[heat], -fake_vectors(again.texts)[0])
    assert state.name_progress() == (1, 1)


def test_names_whose_embedding_failed_go_back_to_the_front_of_the_queue():
    state = loaded([TripleRecord("Heat", "directed_by", "Michael Mann")])
    state.queue_names()
    first = state.next_names(1)
    state.requeue(first)
    assert state.next_names(2).entities[0] == first.entities[0] and state.names_pending == 2


def test_half_precision_name_vectors_stay_half_as_the_graph_grows():
    state = GraphState("films", KnowledgeGraph(), DIMENSIONS, vector_dtype=torch.float16)
    state.apply([TripleRecord("Heat", "directed_by", "Michael Mann")])
    names = state.next_names(10)
    state.set_queued_vectors(names, fake_vectors(names.texts))
    state.apply([TripleRecord("Collateral", "directed_by", "Michael Mann")])
    assert state.entity_vectors.dtype == torch.float16 and state.entity_vectors.shape == (3, DIMENSIONS)
