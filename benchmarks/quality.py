"""Quality: the validation ELBO after a fixed number of training steps, in
float32 and in the automatic precision, and the same weights scored in
another precision."""

import time

import keras
import numpy as np
import tensorflow as tf

import keras_vae
from benchmarks import workloads
from benchmarks.results import ElboRun

SCORE_BATCH = 256  # Validation images scored per call.


def validation_elbo(arch, precision, steps, batch_size, train_images, validation_images, seed=0,
                    scored_in=("auto",)):
    """An `ElboRun`: keras-vae trained `steps` steps from seed `seed` on
    `train_images`, then scored on `validation_images`; float32-trained
    weights are also scored in each precision of `scored_in`."""
    keras.utils.set_random_seed(seed)
    model = keras_vae.build_model(workloads.spec(arch, precision, seed))
    start = time.perf_counter()
    model.fit(workloads.cached_batches(train_images, batch_size), epochs=1,
              steps_per_epoch=steps, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    policy = workloads.policy_of(model)
    same_weights = {}
    if policy == "float32":
        # The same trained weights scored by networks in another precision:
        # what the precision alone does to the reported ELBO.
        for other in scored_in:
            mixed = keras_vae.build_model(workloads.spec(arch, other, seed))
            if workloads.policy_of(mixed) != "float32":
                mixed.set_weights(model.get_weights())
                same_weights[workloads.policy_of(mixed)] = elbo(mixed, validation_images)
    return ElboRun(arch.name, precision, policy, seed, steps, batch_size,
                   elbo(model, validation_images), seconds, same_weights)


def elbo(model, images):
    """Mean validation ELBO, nats per image, one seeded z sample per image."""
    x = tf.constant(images)
    return float(np.mean([float(model.compute_terms(x[i : i + SCORE_BATCH], seed=i)["elbo"])
                          for i in range(0, len(images), SCORE_BATCH)]))


def elbo_runs(arch, steps, batch_size, seeds=(0, 1), scored_in=("auto",)):
    """float32 and the automatic precision, each trained `steps` steps from
    each seed's initial weights on the same batches: the precision's effect
    beside how far two seeds land apart by chance."""
    train_images = workloads.cached_images(arch)
    validation_images = workloads.cached_images(arch, 512, validation=True)
    return [
        validation_elbo(arch, precision, steps, batch_size, train_images, validation_images, seed,
                        scored_in)
        for seed in seeds for precision in ("float32", "auto")
    ]
