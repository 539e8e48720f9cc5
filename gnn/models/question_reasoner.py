"""A trainable question reasoner in the style of TransferNet / NSM, over encoded relation names.

Per hop, a small network turns the encoded question (and, by attention, its token states) into an
*instruction*; the directed relations that
leave the current frontier get a softmax distribution from cos(instruction, relation-name embedding +
direction embedding); mass moves from the topic entities along the weighted relations; the answer mixes the
hops by a learned hop attention. Relations compete (a softmax, not independent gates), so following a wrong
relation costs the right one its weight.
Nothing is tied to one graph's ids: relations enter only through their encoded names, so a model trained on
one graph runs on any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.kernels import cpu as cpu_kernels
from graphfuse.gnn.layers import RelationPropagation
from graphfuse.gnn.layers.transition import Frontier
from graphfuse.gnn.models.answer_head import AnswerHead, AnswerHeadConfig


@dataclass
class QuestionReasonerConfig:
    text_dim: int = 384  # encoder output size (instructions and relations live in this space)
    hops: int = 3  # propagation steps (the answer mixes all of them)
    live_mass: float = 0.01  # entities with at least this score decide which relations can be followed
    dropout: float = 0.1
    token_attention: bool = True  # each hop also attends over the question's token states (word order:
    # "directed the films starred by" vs "starred in the films directed by")
    max_temperature: float = 100.0  # cap of the learned relation-softmax temperature
    topic_placeholder: str = ""  # stands where the topic's mention was in the question the model reads (""
    # drops the mention): "who is listed as screenwriter of [MASK] starred movies" keeps the topic's place


@dataclass
class ReasonerOutput:
    scores: Tensor  # (N, B) answer scores in [0, 1]; topic entities zero
    hop_scores: list[Tensor]  # T x (N, B): entity scores after each hop
    relation_weights: Tensor  # (T, B, 2R)
    hop_attention: Tensor  # (B, T)
    hop_logits: Tensor  # (B, T): the stop head's logits (hop_attention is their softmax)
    hop_block: Tensor | None = None  # (T, N, B): hop_scores in one block, where the fused kernels wrote it


@dataclass
class _FirstLayers:
    """The heads' first-layer weights split by what they read, each block contiguous: columns (rows of
    ``relation``) are the heads' outputs side by side ((word query,) instruction, stop). Blocks that
    multiply a batch from the right are stored transposed, ``(D, W)``, the layout the matrix product reads
    fastest; the instruction head's last layer too."""

    widths: list[int]  # each head's output width
    question: Tensor  # (D, W)
    relation: Tensor  # (W, D): on the relation followed at the previous hop
    from_hop: Tensor  # (T, W): the hop embeddings' products, biases included
    words: tuple[Tensor, Tensor] | None  # (D, W_instruction), (D, W_stop): on the attended words
    instruction_out: tuple[Tensor, Tensor]  # (2D, D) weight, (D,) bias: the instruction head's last layer


@dataclass
class _HopInputs:
    """What the heads' first layers add up at every hop, precomputed once per batch.

    A first layer reads ``[question, relation followed, hop, (attended words)]``. Its product with the
    question is the same at every hop, the relation followed is a mix of the ``2R`` directed relations (so
    its product is the relation weights times a ``(2R, W)`` table) and the hop's is a constant: only the
    attended words are multiplied per hop. ``lead`` covers the word query and the instruction, ``stop`` the
    stop head, which reads the relation followed *at* the hop rather than before it: its inputs are added
    up for all hops at once (:meth:`stops`).
    """

    lead: Tensor  # (T, B, W_lead): question and hop products, biases included
    lead_relation: Tensor  # (2R, W_lead)
    stop: Tensor  # (T, B, W_stop)
    stop_relation: Tensor  # (2R, W_stop)

    def lead_at(self, t: int, followed: Tensor | None) -> Tensor:
        """The lead heads' first-layer output at hop ``t`` after following ``followed`` ``(B, 2R)`` (None
        before the first hop), the attended words left out."""
        return self.lead[t] if followed is None else torch.addmm(self.lead[t], followed, self.lead_relation)

    def stops(self, followed: Tensor, read: Tensor | None, on_words: Tensor | None) -> Tensor:
        """``(T, B, W_stop)``: the stop head's first-layer output at every hop, from the relations followed
        at each ``(T, B, 2R)`` and the words each read ``(T, B, D)`` (their weights ``on_words`` ``(D,
        W_stop)``), in two products for all hops."""
        hops, batch, _ = followed.shape
        rows = hops * batch
        total = torch.addmm(self.stop.view(rows, -1), followed.view(rows, -1), self.stop_relation)
        if read is not None:
            total = torch.addmm(total, read.view(rows, -1), on_words)
        return total.view(hops, batch, -1)


class QuestionReasoner(nn.Module):
    """Question-conditioned multi-hop propagation.

    Each hop's instruction reads the question *and the relation followed at the previous hop* (NSM's
    recurrent instructions), so "the films written by X, which genres" (written_by^-1 then has_genre) and
    "films sharing writers with X, which genres" (written_by, written_by^-1, has_genre) can part ways after
    the first step. With ``token_attention``, each hop also attends over the question's token states from
    that same state (NSM's instruction attention): a pooled sentence vector barely tells "who directed the
    films starred by" from "who starred in the films directed by", the words around the gap do. Whether to
    stop after hop t is read the same way.

    Args:
        config: sizes and hop count.
    """

    def __init__(self, config: QuestionReasonerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or QuestionReasonerConfig()
        d = config.text_dim
        # inputs of the instruction and stop heads: question, previous relation, hop (, attended words)
        width = (4 if config.token_attention else 3) * d
        self.hop_embedding = nn.Embedding(config.hops, d)
        if config.token_attention:
            self.token_norm = nn.LayerNorm(d)
            self.token_query = nn.Linear(3 * d, d)
        self.instruction = nn.Sequential(  # correction added to the question vector, per hop
            nn.Linear(width, 2 * d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(2 * d, d)
        )
        self.stop = nn.Sequential(nn.Linear(width, d), nn.GELU(), nn.Linear(d, 1))  # answer-here logit
        self.relation = nn.Linear(d, d)  # correction added to the relation-name vector
        self.direction = nn.Embedding(2, d)  # forward, reversed
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.propagate = RelationPropagation()
        self.answer_head: AnswerHead | None = None  # fitted after the reasoner (training: fit_answer_head)
        self._layers: tuple[tuple, _FirstLayers] | None = None  # see _first_layers
        self._relations: tuple | None = None  # see _relation_tables
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start as the zero-shot matcher: instruction = question, relation = its name, cosine logits."""
        queries = [self.token_query] if self.config.token_attention else []
        for module in (*self.instruction, *self.stop, *queries):
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        for module in (self.instruction[-1], self.relation):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        nn.init.normal_(self.hop_embedding.weight, std=0.1)
        nn.init.zeros_(self.direction.weight)
        nn.init.constant_(self.log_temperature, math.log(10.0))

    def directed_relations(self, relation_vectors: Tensor) -> Tensor:
        """``(2R, D)``: relation-name vectors, corrected, forward then reversed."""
        relations = relation_vectors + self.relation(relation_vectors)  # (R, D)
        return torch.cat([relations + self.direction.weight[0], relations + self.direction.weight[1]])

    def forward(
        self,
        graph: KnowledgeGraph,
        relation_vectors: Tensor,
        questions: Tensor,
        topics: Tensor,
        tokens: Tensor | None = None,
        token_mask: Tensor | None = None,
        topic_cells: tuple[Tensor, Tensor] | None = None,
    ) -> ReasonerOutput:
        """Score every entity for every question.

        Shapes:
            relation_vectors: ``(R, D)``; questions: ``(B, D)``; topics: ``(N, B)`` initial mass;
            tokens: ``(B, L, D)`` the questions' token states and token_mask ``(B, L)`` (True on real tokens),
            both required with ``token_attention`` (see :func:`token_inputs`); topic_cells: ``(entities,
            columns)`` where ``topics`` is positive, when the caller knows them (spares a pass over it).
        """
        if topics.shape != (graph.num_entities, questions.shape[0]):
            raise ValueError(
                f"Expected 'topics' of shape {(graph.num_entities, questions.shape[0])} "
                f"(got {tuple(topics.shape)})"
            )
        if self.config.token_attention:
            if tokens is None or token_mask is None:
                raise ValueError("this model attends over the questions' words: give 'tokens', 'token_mask'")
            if tokens.shape[0] != questions.shape[0] or token_mask.shape != tokens.shape[:2]:
                raise ValueError(
                    f"Expected 'tokens' (B, L, D) and 'token_mask' (B, L) for B={questions.shape[0]} "
                    f"(got {tuple(tokens.shape)} and {tuple(token_mask.shape)})"
                )
            words = self.token_norm(tokens)  # (B, L, D)
        layers = self._first_layers()
        keys, from_relation = self._relation_tables(relation_vectors, layers)  # (2R, D), (2R, W)
        inputs = self._hop_inputs(layers, questions @ layers.question, from_relation)
        temperature = self.log_temperature.exp().clamp(max=self.config.max_temperature)
        keys = keys * temperature  # (2R, D): logits are cos(instruction, key) x temperature
        instruction_base = questions + layers.instruction_out[1]  # (B, D): each hop's instruction corrects it
        degree = graph.out_degree()  # (2R, N)
        frontier, topic_cells = Frontier.start(topics, self.config.live_mass, topic_cells)
        # the fused kernels write every hop into one block; the last hop also writes the hops' mix
        block = cpu_kernels.block(self.config.hops, *topics.shape) if frontier.fused else None
        # so do the word attention and the relation softmax, each in one pass
        fused_heads = block is not None and cpu_kernels.available(questions, keys)
        if self.config.token_attention and not fused_heads:
            words_by_dim = words.transpose(1, 2)  # (B, D, L)
            padding = torch.zeros(token_mask.shape, dtype=words.dtype)  # (B, 1, L): -inf where no token
            padding = padding.masked_fill_(~token_mask, float("-inf"))[:, None]
        w = None  # (B, 2R): the relation weights of the previous hop
        hop_scores, weights, reads, held = [], [], [], []  # held: each hop's rows with mass (fused)
        for t in range(self.config.hops):
            hidden = inputs.lead_at(t, w)
            if self.config.token_attention:
                d = self.config.text_dim
                query, hidden = hidden[:, :d], hidden[:, d:]  # (B, D), (B, W_instruction)
                if fused_heads:
                    read = cpu_kernels.read_words(query, words, token_mask, d**-0.5)  # (B, D): the words read
                else:
                    attention_logits = torch.baddbmm(padding, query[:, None], words_by_dim, alpha=d**-0.5)
                    read = torch.bmm(torch.softmax(attention_logits, -1), words)[:, 0]
                hidden = torch.addmm(hidden, read, layers.words[0])
                reads.append(read)
            instruction = self._instruction(hidden, layers, instruction_base)  # (B, D)
            # Relations compete only among those that leave the current frontier: a direction with no edge
            # from where the mass is cannot be the next step.
            if fused_heads:
                w = cpu_kernels.relation_softmax(instruction, keys, frontier.live_words(degree))  # (B, 2R)
            else:
                logits = (instruction @ keys.T) / instruction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                live = frontier.live_directions(degree)  # (B, 2R)
                w = torch.softmax(logits.masked_fill(~live, float("-inf")), dim=-1).nan_to_num(0.0)
            weights.append(w)
            out = mix_into = None
            if block is not None:
                out = block[t]
                if t == self.config.hops - 1:  # the hops' mix is known: the last hop writes it too
                    hop_logits = self._hop_logits(inputs, weights, reads, layers)  # (B, T)
                    attention = torch.softmax(hop_logits, dim=-1)
                    scores = cpu_kernels.block(*topics.shape)
                    mix_into = cpu_kernels.HopMix(block[:t], attention, scores, tuple(held))
            # mass never moves back to the topics
            frontier = self.propagate(
                graph,
                frontier,
                w,
                exclude=topic_cells,
                out=out,
                mix_into=mix_into,
                last=t == self.config.hops - 1,
            )
            hop_scores.append(frontier.mass)  # (N, B)
            if frontier.summary is not None:
                held.append(frontier.summary.active)
        if block is None:
            hop_logits = self._hop_logits(inputs, weights, reads, layers)
            attention = torch.softmax(hop_logits, dim=-1)
            scores = hop_scores[0] * attention[:, 0]
            for t in range(1, self.config.hops):
                scores.addcmul_(hop_scores[t], attention[:, t])
        return ReasonerOutput(scores, hop_scores, torch.stack(weights), attention, hop_logits, block)

    def _instruction(self, hidden: Tensor, layers: _FirstLayers, base: Tensor) -> Tensor:
        """The instruction: ``base`` (the question, the last layer's bias added) corrected by the instruction
        head after its first layer (GELU, dropout, linear) on that layer's output ``hidden`` ``(B, 2D)``."""
        hidden = F.dropout(F.gelu(hidden), self.config.dropout, self.training)
        return torch.addmm(base, hidden, layers.instruction_out[0])

    def _hop_logits(
        self, inputs: _HopInputs, weights: list[Tensor], reads: list[Tensor], layers: _FirstLayers
    ) -> Tensor:
        """``(B, T)``: the logits of the answer's weight on each hop, read by the stop head from each hop's
        relation weights ``T x (B, 2R)`` and attended words ``T x (B, D)`` (none without token attention),
        all hops at once."""
        read = torch.stack(reads) if reads else None
        stop = inputs.stops(torch.stack(weights), read, layers.words[1] if layers.words else None)
        return _after_first(self.stop, stop)[..., 0].T  # (B, T)

    def _first_layers(self) -> _FirstLayers:
        """The heads' first-layer weights by input; kept while the weights stay the same and no gradients
        are recorded (inference), rebuilt from the parameters otherwise."""
        heads = [self.instruction[0], self.stop[0]]
        if self.config.token_attention:
            heads.insert(0, self.token_query)
        last = self.instruction[-1]
        # every weight cached here or in the relation tables (which are kept with these layers): any changed,
        # rebuild (a walk over self.parameters() would cost more than the rest of a forward's bookkeeping)
        cached = [self.hop_embedding, last, self.relation, self.direction, *heads]
        key = tuple((p.data_ptr(), p._version) for module in cached for p in module._parameters.values())
        if not torch.is_grad_enabled() and self._layers is not None and self._layers[0] == key:
            return self._layers[1]
        blocks = [head.weight.split(self.config.text_dim, dim=1) for head in heads]
        on_hop = torch.cat([split[2] for split in blocks])
        words = None
        if self.config.token_attention:
            words = tuple(split[3].T.contiguous() for split in blocks[-2:])
        layers = _FirstLayers(
            [head.out_features for head in heads],
            torch.cat([split[0] for split in blocks]).T.contiguous(),
            torch.cat([split[1] for split in blocks]),
            self.hop_embedding.weight @ on_hop.T + torch.cat([head.bias for head in heads]),
            words,  # type: ignore[arg-type]
            (last.weight.T.contiguous(), last.bias),
        )
        if not torch.is_grad_enabled():
            self._layers = (key, layers)
        return layers

    def _relation_tables(self, relation_vectors: Tensor, layers: _FirstLayers) -> tuple[Tensor, Tensor]:
        """``(unit keys of the directed relations (2R, D), their first-layer products (2R, W))``; kept for
        the same relation vectors and weights while no gradients are recorded (a served graph asks with the
        same vectors until its relations change)."""
        cached = self._relations
        if (
            not torch.is_grad_enabled()
            and cached is not None
            and cached[0] is relation_vectors
            and cached[1] == relation_vectors._version
            and cached[2] is layers
        ):
            return cached[3]
        directed = self.directed_relations(relation_vectors)  # (2R, D)
        tables = F.normalize(directed, dim=-1), directed @ layers.relation.T
        if not torch.is_grad_enabled():
            self._relations = (relation_vectors, relation_vectors._version, layers, tables)
        return tables

    @staticmethod
    def _hop_inputs(layers: _FirstLayers, from_question: Tensor, from_relation: Tensor) -> _HopInputs:
        """See :class:`_HopInputs`."""
        lead = sum(layers.widths[:-1])
        hop = layers.from_hop[:, None]  # (T, 1, W)
        return _HopInputs(
            from_question[:, :lead] + hop[..., :lead],  # (T, B, W_lead)
            from_relation[:, :lead],
            from_question[:, lead:] + hop[..., lead:],  # (T, B, W_stop)
            from_relation[:, lead:],
        )

    def checkpoint(self) -> dict:
        """What :meth:`from_checkpoint` needs: config and weights (the answer head's included)."""
        head = asdict(self.answer_head.config) if self.answer_head is not None else None
        return {"config": asdict(self.config), "answer_head": head, "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> QuestionReasoner:
        # checkpoints from before token attention lack the key and were trained without it
        model = cls(QuestionReasonerConfig(**{"token_attention": False, **checkpoint["config"]}))
        if checkpoint.get("answer_head") is not None:
            model.answer_head = AnswerHead(AnswerHeadConfig(**checkpoint["answer_head"]))
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{self.__class__.__name__}(text_dim={c.text_dim}, hops={c.hops}, "
            f"token_attention={c.token_attention}, answer_head={self.answer_head is not None})"
        )


def _after_first(layers: nn.Sequential, x: Tensor) -> Tensor:
    """``layers`` after the first one, applied to ``x`` (slicing a Sequential builds a new one per call)."""
    for layer in list(layers)[1:]:
        x = layer(x)
    return x


def token_inputs(states: Sequence[Tensor]) -> dict[str, Tensor]:
    """The model's ``tokens`` and ``token_mask`` arguments from one ``(L_b, D)`` tensor per question (any
    float dtype): ``(B, L, D)`` float32 states padded with zeros to the longest question, ``(B, L)`` True on
    real tokens."""
    tokens = nn.utils.rnn.pad_sequence([s.float() for s in states], batch_first=True)  # (B, L, D)
    lengths = torch.tensor([s.shape[0] for s in states])
    return {"tokens": tokens, "token_mask": torch.arange(tokens.shape[1]) < lengths[:, None]}
