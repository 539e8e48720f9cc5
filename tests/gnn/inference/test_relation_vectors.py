import pytest
import torch

from graphfuse.gnn.inference.relation_vectors import RelationVectors

AXES = torch.eye(4)


def test_a_direction_matches_by_its_best_phrase():
    names = AXES[:2]
    forward = [AXES[[0, 2]], AXES[[1]]]  # relation 0 has an alias along axis 2
    inverse = [AXES[[3]], AXES[[1]]]
    relations = RelationVectors.from_phrases(names, forward, inverse, torch.zeros(4, 4))
    similarity = relations.direction_similarity(AXES[[2, 3]])
    assert similarity.tolist() == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]  # alias; inverse phrase


def test_names_alone_match_the_same_both_ways_with_answers_unknown():
    relations = RelationVectors.from_names(AXES[:3])
    similarity = relations.direction_similarity(AXES[[1]])
    assert similarity.tolist() == [[0.0, 1.0, 0.0, 0.0, 1.0, 0.0]]
    assert relations.answer_fit(AXES[[1]]).abs().sum() == 0


def test_phrases_of_every_relation_are_required():
    with pytest.raises(ValueError, match="phrases of 2 relations"):
        RelationVectors.from_phrases(AXES[:2], [AXES[[0]]], [AXES[[0]]], torch.zeros(4, 4))
