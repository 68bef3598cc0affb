"""The objective spec grammar and the combined loss."""

from __future__ import annotations

import pytest
import torch

from alignsphere import align_loss, contrastive_loss, uniform_loss, uniform_queue_loss
from alignsphere.losses import Objective, Term, parse_objective, parse_terms


def unit(shape, seed):
    return torch.nn.functional.normalize(
        torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1
    )


def test_parse_full_spec():
    terms = parse_terms("1*align(alpha=2) + 1*uniform(t=2) + 0.5*contrastive(tau=0.2)")
    assert terms == [
        Term("align", 1.0, {"alpha": 2.0}),
        Term("uniform", 1.0, {"t": 2.0}),
        Term("contrastive", 0.5, {"tau": 0.2}),
    ]


def test_parse_defaults_spacing_and_exponents():
    terms = parse_terms("align+ 3 * uniform ( t = 3 )+1e-1*contrastive()")
    assert terms[0] == Term("align", 1.0, {"alpha": 2.0})
    assert terms[1] == Term("uniform", 3.0, {"t": 3.0})
    assert terms[2] == Term("contrastive", 0.1, {"tau": 0.5})


def test_parse_yaml_list_equals_string():
    listed = parse_terms(
        [
            {"term": "align", "weight": 3, "alpha": 2},
            {"term": "uniform_queue", "t": 3, "intra_batch": False},
        ]
    )
    assert listed == parse_terms(
        "3*align(alpha=2) + 1*uniform_queue(t=3, intra_batch=false)"
    )


def test_round_trip_through_str():
    objective = Objective("0.5*align(alpha=1) + 2*uniform(t=4)")
    assert parse_terms(str(objective)) == objective.terms


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1*allign(alpha=2)", "unknown objective term 'allign'.*valid terms: align"),
        ("1*align(beta=2)", "unknown parameter 'beta' of align.*valid: alpha"),
        ("1*align(alpha=0)", "must be > 0"),
        ("1*uniform(t=abc)", "must be a number"),
        ("-1*align", "weight of align.*>= 0"),
        ("1*align(alpha=2) 1*uniform", "joined by '\\+'"),
        ("", "objective is empty"),
        ("1*align(alpha)", "key=value"),
        ("1*uniform_queue(intra_batch=maybe)", "true or false"),
    ],
)
def test_parse_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_terms(spec)


def test_yaml_item_without_term():
    with pytest.raises(ValueError, match="'term' key"):
        parse_terms([{"weight": 1}])


def test_objective_total_and_terms():
    z1, z2 = unit((16, 8), 0), unit((16, 8), 1)
    out = parse_objective(
        "1*align(alpha=2) + 2*uniform(t=3) + 0.5*contrastive(tau=0.2)"
    )(z1, z2)
    align = align_loss(z1, z2, 2)
    uniform = (uniform_loss(z1, 3) + uniform_loss(z2, 3)) / 2
    contrastive = contrastive_loss(z1, z2, 0.2)
    assert torch.allclose(out.terms["align"], align)
    assert torch.allclose(out.terms["uniform"], uniform)
    assert torch.allclose(out.terms["contrastive"], contrastive)
    assert torch.allclose(out.total, align + 2 * uniform + 0.5 * contrastive)


def test_objective_queue_terms():
    q, k, queue = unit((8, 4), 2), unit((8, 4), 3), unit((20, 4), 4)
    objective = parse_objective("3*align(alpha=2) + 1*uniform_queue(t=3)")
    assert objective.needs_queue
    out = objective(q, k, queue)
    expected = 3 * align_loss(q, k) + uniform_queue_loss(q, queue, 3)
    assert torch.allclose(out.total, expected)
    with pytest.raises(ValueError, match="no queue"):
        objective(q, k)


def test_repeated_term_gets_distinct_keys():
    out = parse_objective("1*uniform(t=2) + 1*uniform(t=3)")(
        unit((6, 3), 5), unit((6, 3), 6)
    )
    assert sorted(out.terms) == ["uniform(t=2)", "uniform(t=3)"]


def test_objective_backward_reaches_inputs():
    x = torch.randn(10, 5, requires_grad=True)
    z1 = torch.nn.functional.normalize(x, dim=1)
    z2 = torch.nn.functional.normalize(x + 0.1, dim=1)
    parse_objective("1*align + 1*uniform + 1*contrastive")(z1, z2).total.backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
