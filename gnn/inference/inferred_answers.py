"""Answers a link predictor infers for a question: "what could treat X" reaches past the stored facts.

When the reading that carries most of a question's mass is one hop along a relation the graph's link predictor
predicts, the predictor's most probable missing triples from the topic along that hop answer too, marked
inferred, with the predictor's evidence. An inferred answer's probability is the reading's probability times
the triple's, calibrated as the reasoner calibrates its own, so a stored answer along the same reading always
ranks above it; answers of weaker readings may rank below. Only the inferred answers that make the top are
explained, and only predictors cheap enough to run per question take part (path patterns do; a
message-passing predictor, a pass over the whole graph per query, does not).
"""

from __future__ import annotations

import dataclasses

import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.link_predictions import LinkPattern, LinkScorer, infer_many
from graphfuse.gnn.inference.reasoner import Answer, Reasoning, calibrated

EVIDENCE_PATHS = 3


def with_inferred_answers(
    predictor: LinkScorer | None,
    graph: KnowledgeGraph,
    reasoning: Reasoning,
    topic: int,
    top_k: int,
    calibration: tuple[float, float] = (1.0, 0.0),
) -> list[Answer]:
    """The best ``top_k`` of ``reasoning``'s answers and those ``predictor`` infers along its main reading
    from ``topic``; an entity both answer is kept in the form that scores higher."""
    answers = list(reasoning.answers)
    if predictor is None or top_k <= 0 or not reasoning.paths or len(reasoning.paths[0].directions) != 1:
        return answers
    path = reasoning.paths[0]
    relation, back = graph.relation_of(path.directions[0])
    if not predictor.answers_questions or not predictor.knows(graph, relation):
        return answers
    ceiling = float(calibrated(torch.tensor([path.probability]), calibration)[0])  # a triple scores <= 1
    if len(answers) >= top_k and answers[top_k - 1].score >= ceiling:
        return answers  # no inferred answer could make the top
    pattern = LinkPattern(None if back else topic, relation, topic if back else None, top_k, explain=False)
    triples = infer_many(predictor, graph, [pattern], EVIDENCE_PATHS)[0]
    if not triples:
        return answers
    scores = calibrated(torch.tensor([path.probability * t.score for t in triples]), calibration).tolist()
    best = {a.entity: a for a in answers}
    for triple, score in zip(triples, scores, strict=True):
        entity = triple.head if back else triple.tail
        if entity not in best or best[entity].score < score:
            best[entity] = Answer(entity, score, 1, (), inferred=True)
    chosen = sorted(best.values(), key=lambda a: -a.score)[:top_k]
    inferred = [a.entity for a in chosen if a.inferred]
    wanted = [(e, relation, topic) if back else (topic, relation, e) for e in inferred]
    evidence = iter(predictor.explain_many(graph, wanted, EVIDENCE_PATHS) if wanted else [])
    return [dataclasses.replace(a, evidence=next(evidence)) if a.inferred else a for a in chosen]
