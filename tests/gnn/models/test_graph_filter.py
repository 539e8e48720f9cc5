import io

import pytest
import torch

from graphfuse.gnn.evaluation.ranking_metrics import interaction_rows
from graphfuse.gnn.models.graph_filter import GraphFilterConfig, GraphFilterRecommender

NUM_USERS, NUM_ITEMS = 40, 30


def random_pairs(seed: int = 0, edges: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    users = torch.randint(NUM_USERS, (edges,), generator=generator)
    items = torch.randint(NUM_ITEMS - 1, (edges,), generator=generator)  # the last item has no interaction
    return users, items


def rows_of(users, items, selected):
    return interaction_rows(users, items, torch.tensor(selected), NUM_ITEMS)


def reached(scores):
    """Scores with the items no co-interaction path reaches (-inf) at 0, as the formulas give them."""
    return scores.masked_fill(scores.isneginf(), 0.0)


@pytest.fixture(
    params=[(0.0, 0.0), (0.3, 0.0), (0.3, -0.5)], ids=["linear", "with_ideal", "with_second_order"]
)
def model(request):
    ideal_weight, second_order_weight = request.param
    config = GraphFilterConfig(
        ideal_weight=ideal_weight, ideal_rank=8, second_order_weight=second_order_weight
    )
    return GraphFilterRecommender.fit(*random_pairs(), NUM_USERS, NUM_ITEMS, config)


def test_linear_filter_matches_dense_formula():
    users, items = random_pairs()
    config = GraphFilterConfig(
        user_exponent=0.4, item_exponent=0.6, popularity_exponent=0.25, ideal_weight=0, second_order_weight=0
    )
    model = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, config)
    r = torch.zeros(NUM_USERS, NUM_ITEMS)
    r[users, items] = 1.0  # duplicates counted once
    du, di = r.sum(1), r.sum(0)
    norm = du.pow(-0.4).nan_to_num(posinf=0)[:, None] * r * di.pow(-0.6).nan_to_num(posinf=0)
    expected = r @ norm.T @ norm * torch.where(di > 0, di.pow(0.25), 0)
    assert torch.allclose(model.normalized_interactions().to_dense(), norm, atol=1e-6)
    assert torch.allclose(reached(model.score(r.to_sparse_csr())), expected, atol=1e-5)


def test_ideal_filter_adds_projection_on_top_singular_vectors():
    users, items = random_pairs()
    base_config = GraphFilterConfig(ideal_weight=0, second_order_weight=0)
    base = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, base_config)
    config = GraphFilterConfig(ideal_weight=0.5, ideal_rank=NUM_ITEMS - 1, second_order_weight=0)
    full = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, config)
    # With every nonzero singular direction kept, V V^T projects onto the row space of R~.
    x = rows_of(users, items, [0, 1, 2])
    norm = full.normalized_interactions().to_dense()
    projector = torch.linalg.pinv(norm) @ norm  # (I, I)
    r = torch.zeros(NUM_USERS, NUM_ITEMS)
    r[users, items] = 1.0
    back = r.sum(0).pow(config.item_exponent)  # D_i^b: out of the normalised item space, as GF-CF
    ideal = (x.to_dense() * full.input_scale) @ projector * back
    assert torch.allclose(reached(full.score(x)) - reached(base.score(x)), 0.5 * ideal, atol=1e-4)


def test_state_dict_of_an_older_version_scales_the_ideal_filter_as_it_did():
    users, items = random_pairs()
    model = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, GraphFilterConfig(ideal_rank=8))
    state = model.state_dict()
    del state["config"]["ideal_maps_back"]
    loaded = GraphFilterRecommender.from_state_dict(state)
    assert not loaded.config.ideal_maps_back
    rows = rows_of(users, items, [0, 9, 17])
    x_t = rows.to_dense().T
    ideal = (model.vectors @ (model.vectors.T @ (x_t * model.input_scale[:, None]))).T  # (B, I)
    weight = model.config.ideal_weight
    before = model.score(rows) + weight * ideal * (model.output_scale - model.ideal_scale)  # scaled by d_i^p
    assert torch.allclose(loaded.score(rows), before, atol=1e-5)  # -inf where no path reaches, in both


def test_second_order_term_adds_scaled_square_of_the_item_graph():
    users, items = random_pairs()
    base_config = GraphFilterConfig(ideal_weight=0, second_order_weight=0)
    base = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, base_config)
    config = GraphFilterConfig(ideal_weight=0, second_order_weight=-0.5)
    model = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, config)
    norm = model.normalized_interactions().to_dense()
    gram = norm.T @ norm  # (I, I)
    top = torch.linalg.matrix_norm(norm, ord=2)  # largest singular value of R~
    assert model.second_order == pytest.approx(-0.5 / float(top) ** 2, rel=1e-4)
    x = rows_of(users, items, [0, 1, 2]).to_dense()
    expected = -0.5 / top**2 * (x @ gram @ gram) * model.output_scale
    difference = reached(model.score(x.to_sparse_csr())) - reached(base.score(x.to_sparse_csr()))
    assert torch.allclose(difference, expected, atol=1e-5)


def test_second_order_scale_is_the_same_with_or_without_the_svd():
    users, items = random_pairs()
    with_svd = GraphFilterConfig(ideal_rank=8, second_order_weight=-0.5)
    without = GraphFilterConfig(ideal_weight=0, second_order_weight=-0.5)
    a = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, with_svd)
    b = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, without)
    assert a.second_order == pytest.approx(b.second_order, rel=1e-4)


def test_state_dict_of_an_older_version_loads_without_the_second_order_term():
    users, items = random_pairs()
    config = GraphFilterConfig(ideal_rank=8, second_order_weight=0.0)
    model = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, config)
    state = model.state_dict()
    del state["second_order"]
    del state["config"]["second_order_weight"]
    state["config"]["retired_option"] = 1  # a key this version does not know
    loaded = GraphFilterRecommender.from_state_dict(state)
    rows = rows_of(users, items, [0, 9, 17])
    assert loaded.second_order == 0 and loaded.config.second_order_weight == 0
    assert torch.allclose(loaded.score(rows), model.score(rows))


def test_batched_scores_equal_one_at_a_time(model):
    users, items = random_pairs()
    rows = rows_of(users, items, list(range(NUM_USERS)))
    together = model.score(rows)
    assert together.shape == (NUM_USERS, NUM_ITEMS)
    for u in range(0, NUM_USERS, 7):
        alone = model.score(rows_of(users, items, [u]))
        assert torch.allclose(together[u], alone[0], atol=1e-5)


def test_sparse_and_dense_rows_score_alike(model):
    users, items = random_pairs()
    rows = rows_of(users, items, list(range(NUM_USERS)))  # CSR: only the users' items' vectors are read
    assert torch.allclose(model.score(rows), model.score(rows.to_dense()), atol=1e-6)


def test_scores_follow_the_given_rows(model):
    users, items = random_pairs()
    before = model.score(rows_of(users, items, [3]))
    added_item = int(torch.nonzero(rows_of(users, items, [3]).to_dense()[0] == 0)[0])
    after = model.score(
        rows_of(torch.cat([users, torch.tensor([3])]), torch.cat([items, torch.tensor([added_item])]), [3])
    )
    assert not torch.allclose(before, after)
    # A user unseen at fit, given user 3's rows, gets user 3's scores: nothing per-user is stored.
    assert torch.allclose(model.score(rows_of(users, items, [3]).to_dense().to_sparse_csr()), before)


def test_empty_row_reaches_nothing_and_known_items_are_not_masked(model):
    users, items = random_pairs()
    assert model.score(torch.zeros(2, NUM_ITEMS).to_sparse_csr()).isneginf().all()
    rows = rows_of(users, items, [5])
    known = rows.to_dense()[0] > 0
    assert torch.isfinite(model.score(rows)[0, known]).all()


def test_item_without_interactions_is_not_reached(model):
    users, items = random_pairs()
    assert model.score(rows_of(users, items, [0, 1]))[:, NUM_ITEMS - 1].isneginf().all()


def test_an_item_no_path_reaches_ranks_below_every_reached_one():
    # two blocks of users and items: a row in the first block reaches only the first block's items, even
    # where the band-pass terms score them below zero
    users = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5])
    items = torch.tensor([0, 1, 0, 1, 2, 1, 2, 3, 4, 4, 5, 3])
    model = GraphFilterRecommender.fit(users, items, 6, 6, GraphFilterConfig(second_order_weight=-1.0))
    scores = model.score(interaction_rows(users, items, torch.tensor([0, 3]), 6))
    assert torch.isfinite(scores[0, :3]).all() and scores[0, 3:].isneginf().all()
    assert torch.isfinite(scores[1, 3:]).all() and scores[1, :3].isneginf().all()


def test_state_dict_round_trip(model):
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    loaded = GraphFilterRecommender.from_state_dict(torch.load(buffer, weights_only=True))
    users, items = random_pairs()
    rows = rows_of(users, items, [0, 9, 17])
    assert loaded.config == model.config
    assert (loaded.num_users, loaded.num_items) == (NUM_USERS, NUM_ITEMS)
    assert torch.allclose(loaded.score(rows), model.score(rows))
    assert loaded.memory_bytes() == model.memory_bytes() > 0


def test_fit_ignores_duplicates_and_is_deterministic():
    users, items = random_pairs()
    config = GraphFilterConfig(ideal_rank=8)
    once = GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS, config)
    twice = GraphFilterRecommender.fit(users.repeat(2), items.repeat(2), NUM_USERS, NUM_ITEMS, config)
    rows = rows_of(users, items, list(range(10)))
    assert torch.allclose(once.score(rows), twice.score(rows), atol=1e-5)


@pytest.mark.parametrize(
    ("users", "items", "message"),
    [
        (torch.tensor([0, NUM_USERS]), torch.tensor([0, 1]), "user ids"),
        (torch.tensor([0, 1]), torch.tensor([0, NUM_ITEMS]), "item ids"),
        (torch.tensor([0, 1]), torch.tensor([0]), "one length"),
    ],
)
def test_fit_checks_ids(users, items, message):
    with pytest.raises(ValueError, match=message):
        GraphFilterRecommender.fit(users, items, NUM_USERS, NUM_ITEMS)


def test_score_checks_row_width(model):
    with pytest.raises(ValueError, match=f"\\(B, {NUM_ITEMS}\\)"):
        model.score(torch.zeros(1, NUM_ITEMS + 1).to_sparse_csr())


def test_recommends_the_co_interacted_item():
    # Users 0-3 all took items 0 and 1; user 4 took only item 0: item 1 must come first among the rest.
    users = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6])
    items = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 3, 4])
    model = GraphFilterRecommender.fit(users, items, 7, 5, GraphFilterConfig(ideal_rank=2))
    scores = model.score(torch.tensor([[1.0, 0, 0, 0, 0]]).to_sparse_csr())[0]
    scores[0] = float("-inf")
    assert int(scores.argmax()) == 1
