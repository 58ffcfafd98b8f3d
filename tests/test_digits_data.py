"""The built-in supernet's synthesised digits: reproducible held-out split, disjoint handwriting."""

import torch

from service.supernets import digits_data
from service.supernets.digits_data import (
    HELD_OUT_SIZE,
    IMAGE_SIZE,
    held_out_set,
    load_splits,
    synthesise,
    typeset_bases,
)


def test_held_out_split_is_the_same_every_time_and_other_seeds_differ():
    first, second = load_splits(), load_splits()
    assert first.held_out_images.shape == (HELD_OUT_SIZE, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(first.held_out_images, second.held_out_images)
    assert torch.equal(first.held_out_labels, second.held_out_labels)
    other_images, _ = held_out_set(seed=8)
    assert not torch.equal(other_images, first.held_out_images)


def test_every_digit_is_well_represented_in_the_held_out_split():
    counts = torch.bincount(load_splits().held_out_labels, minlength=10)
    assert counts.min() > 0.08 * HELD_OUT_SIZE


def test_typeset_digits_render_from_the_bundled_fonts():
    bases = typeset_bases()
    assert len(bases.labels) == 10 * len(digits_data.FONTS)
    ink = bases.images.flatten(1).sum(1)
    assert (ink > 10).all()  # every glyph drew something
    # two fonts render the same digit differently
    assert not torch.equal(bases.images[0], bases.images[10])


def test_no_handwritten_digit_is_both_trained_on_and_held_out():
    train, held_out = digits_data._bases()
    n_typeset = len(typeset_bases().labels)
    train_hand = train.images[:-n_typeset].flatten(1)
    held_hand = held_out.images[:-n_typeset].flatten(1)
    assert len(train_hand) + len(held_hand) == 1797
    shared = (torch.cdist(train_hand, held_hand) == 0).sum()
    # scikit-learn's digits hold a few exact duplicates; a leak would be hundreds
    assert shared < 10


def test_training_draws_are_fresh_and_labelled_with_digits():
    train = load_splits().train
    generator = torch.Generator().manual_seed(0)
    a_images, a_labels = synthesise(train, 64, generator)
    b_images, _ = synthesise(train, 64, generator)
    assert a_images.shape == (64, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert not torch.equal(a_images, b_images)
    assert set(a_labels.tolist()) <= set(range(10))
