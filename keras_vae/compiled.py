"""What makes a model's computations run the same compiled (XLA) or not.

Keras compiles `train_step`, `test_step` and `predict_step` with XLA when
`model.jit_compile` is True, which `jit_compile="auto"` chooses on a GPU.
Three things here keep those steps fast and their numbers the same as
uncompiled: a sampler whose draws do not depend on compilation, a guard
against non-finite steps that XLA compiles well (selects, not a conditional), and
`function`, which compiles the measurements made outside the steps (the
IWAE bound, the per-epoch diagnostics) as the model's own steps are.
"""

import functools
import weakref

import keras
import numpy as np
import tensorflow as tf

_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {(fn, jit_compile): tf.function}


def function(model, fn):
    """`fn(model, *args)` as a `tf.function` of `*args`, XLA-compiled when
    `model.jit_compile` is True (after `compile`), traced once per input
    signature and kept while the model lives. Pass seeds as tensors: a
    Python number in the arguments traces the function again."""
    jit_compile = bool(getattr(model, "jit_compile", False))
    functions = _FUNCTIONS.setdefault(model, {})
    key = (fn, jit_compile)
    if key not in functions:
        functions[key] = tf.function(functools.partial(fn, model), jit_compile=jit_compile,
                                     reduce_retracing=True)
    return functions[key]


def standard_normal(shape, seed):
    """ε ~ N(0, I), float32, drawn statelessly from `seed`: a
    `keras.random.SeedGenerator` (which it advances), an int or an int pair.

    The same numbers compiled (XLA) or not. TensorFlow's own normal and
    uniform floats differ under XLA for a seed known only at run time
    (measured: values up to 2.5 apart), while its Philox bits agree; so the
    bits are drawn and turned into normals here, by Box–Muller
    (z = √(−2 ln u₁)·cos 2πu₂ with u in (0, 1]), which leaves only the
    last-place differences of log, cos and sqrt.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    elif isinstance(seed, int):
        seed = (seed, 0)
    seed = tf.convert_to_tensor(seed)
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(tf.cast(seed, "int64"), tf.int32.max - 1), "int32")
    bits = tf.random.stateless_uniform(tf.concat([[2], shape], 0), seed, minval=None,
                                       maxval=None, dtype=tf.uint32, alg="philox")
    # The top 24 bits: k/2^24 is exact in float32; +1 keeps log(u) finite.
    u = (tf.cast(tf.bitwise.right_shift(bits, 8), "float32") + 1.0) * 2.0**-24
    return tf.sqrt(-2.0 * tf.math.log(u[0])) * tf.cos(2.0 * np.pi * u[1])


def finite_step(loss, grads):
    """True (a scalar bool tensor) when the scalar `loss` is finite and the
    gradients' sum of squares is: False for any NaN or ±inf, and for a
    gradient whose square overflows float32 (|g| > 1.8e19), which Adam's
    second moment (a running mean of g²) could not hold either.

    One fused pass over each gradient (`tf.nn.l2_loss`) and one sum: half
    the passes and 2 ops fewer per variable than `reduce_all(is_finite(g))`.
    """
    squares = [tf.nn.l2_loss(g) for g in grads if g is not None]
    finite = tf.math.is_finite(loss)
    if squares:
        finite = tf.logical_and(finite, tf.math.is_finite(tf.add_n(squares)))
    return finite


def apply_if(condition, update, variables, jit_compile):
    """Runs `update()`, whose writes to `variables` take effect only if the
    scalar bool `condition` holds; else every one keeps its value.

    Uncompiled, a `tf.cond` around the update: nothing is copied. Under XLA,
    where a conditional holding the optimizer's update made the step 25×
    slower on CPU (measured: 60 against 1,045 img/s), the update always runs
    and a select (`tf.where`) of new and old values, which XLA fuses into it,
    undoes it; uncompiled, those copies cost 8 % at 28×28×1 batch 32
    (measured: 1,051 against 1,161 images per CPU second). Reads and writes
    of one variable run in program order (tf.function's automatic control
    dependencies), so the old values are read before the update writes.
    """
    if not jit_compile:
        def apply():
            update()
            return tf.constant(True)

        tf.cond(condition, apply, lambda: tf.constant(False))
        return
    before = [tf.identity(v) for v in variables]
    update()
    for variable, old in zip(variables, before):
        variable.assign(tf.where(condition, variable, old))
