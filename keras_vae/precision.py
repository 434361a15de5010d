"""Training precision: which Keras dtype policy the networks compute in, and why.

Four settings:

- ``"float32"``: everything in float32.
- ``"mixed_bfloat16"``: convolutions and dense layers compute in bfloat16
  (8-bit mantissa, float32's exponent range: no loss scaling needed);
  variables stay float32.
- ``"mixed_float16"``: the same in float16 (10-bit mantissa, exponent up to
  ~6.5e4 only), so the optimizer is wrapped in a `LossScaleOptimizer`.
- ``"auto"``: ``mixed_bfloat16`` on a CPU with native bfloat16 arithmetic
  (AMX_BF16 or AVX512_BF16, with oneDNN on) or on a GPU of compute
  capability ≥ 8.0; ``mixed_float16`` on older GPUs; ``float32`` otherwise.

The policy is applied per layer (``dtype=`` of each layer that
`build_encoder`/`build_decoder` create), never with
``keras.mixed_precision.set_global_policy``: building a mixed-precision VAE
leaves the global policy, and every other model the user builds, as they
were. Whatever the policy, `VAE` casts the networks' outputs to float32 before
the likelihood, KL, ELBO, IWAE, σ and β arithmetic (`compute_dtype` below).
"""

import dataclasses
import os

import keras
import tensorflow as tf

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: CPU flags of /proc/cpuinfo that mean native bfloat16 matrix arithmetic.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: CPU flags worth logging beside them (what oneDNN can use).
CPU_FLAGS = CPU_BF16_FLAGS + ("amx_tile", "amx_int8", "avx512_fp16", "avx512f", "avx2")
#: The first GPU compute capability with bfloat16 tensor cores (Ampere).
GPU_BF16_CAPABILITY = (8, 0)


@dataclasses.dataclass(frozen=True)
class Precision:
    """A resolved precision: the policy name and what chose it.

    Attributes:
        requested: the setting asked for ("auto", "float32", ...).
        policy: the Keras dtype policy name ("float32", "mixed_bfloat16",
            "mixed_float16").
        reason: one sentence, for the log.
        cpu_flags: the `CPU_FLAGS` this CPU has.
        gpus: per GPU, "name (compute capability X.Y)".
    """

    requested: str
    policy: str
    reason: str
    cpu_flags: tuple
    gpus: tuple

    @property
    def loss_scaling(self):
        """True if the optimizer needs a `LossScaleOptimizer` (float16)."""
        return self.policy == "mixed_float16"

    def as_dict(self):
        """JSON-ready, for a run's config and `export.json`."""
        return {
            "requested": self.requested,
            "policy": self.policy,
            "reason": self.reason,
            "cpu_flags": list(self.cpu_flags),
            "gpus": list(self.gpus),
        }


def check(precision):
    """Raises a one-line ValueError unless `precision` is one of `PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}."
        )
    return precision


def cpu_flags(path="/proc/cpuinfo"):
    """The `CPU_FLAGS` of the first CPU in /proc/cpuinfo (empty if unreadable)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in CPU_FLAGS if flag in present)
    except OSError:
        pass
    return ()


def gpu_capabilities():
    """[(name, (major, minor))] of the GPUs TensorFlow sees."""
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append((details.get("device_name", device.name),
                     tuple(details.get("compute_capability", (0, 0)))))
    return gpus


def onednn_enabled():
    """False only if oneDNN is turned off (TF_ENABLE_ONEDNN_OPTS=0): without
    it TensorFlow has no fast bfloat16 kernels on the CPU."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() not in ("0", "false", "False")


def resolve(precision="auto", flags=None, gpus=None):
    """A `Precision` for the setting on this machine.

    `flags` (CPU flags) and `gpus` ([(name, (major, minor))]) default to this
    machine's; tests pass their own.
    """
    check(precision)
    flags = cpu_flags() if flags is None else tuple(flags)
    gpus = gpu_capabilities() if gpus is None else list(gpus)
    described = tuple(f"{name} (compute capability {c[0]}.{c[1]})" for name, c in gpus)
    if precision != "auto":
        return Precision(precision, precision, f"{precision} as configured", flags, described)
    if gpus:
        if all(tuple(c) >= GPU_BF16_CAPABILITY for _, c in gpus):
            policy, reason = "mixed_bfloat16", "every GPU has bfloat16 tensor cores (≥ 8.0)"
        else:
            policy, reason = "mixed_float16", "a GPU below compute capability 8.0 (no bfloat16)"
    else:
        native = [flag for flag in CPU_BF16_FLAGS if flag in flags]
        if native and onednn_enabled():
            policy, reason = "mixed_bfloat16", f"CPU with native bfloat16 ({', '.join(native)})"
        elif native:
            policy, reason = "float32", "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)"
        else:
            policy, reason = "float32", "no native bfloat16 on this CPU"
    return Precision("auto", policy, f"auto: {reason}", flags, described)


def policy(precision):
    """The `keras.DTypePolicy` of a setting ("auto" resolved on this machine)."""
    name = resolve(precision).policy if precision == "auto" else check(precision)
    return keras.dtype_policies.DTypePolicy(name)


def compute_dtype(model):
    """The lowest-precision compute dtype among a model's layers ("float32"
    when none is mixed)."""
    dtypes = {layer.dtype_policy.compute_dtype for layer in _layers(model)}
    for name in ("float16", "bfloat16"):
        if name in dtypes:
            return name
    return "float32"


def policy_name(model):
    """The mixed policy a model's layers use, or "float32"."""
    return {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}.get(
        compute_dtype(model), "float32"
    )


def as_float32(model):
    """A float32 copy of a functional Keras model (same weights): what exports
    ship, whatever precision the model trained in."""
    if compute_dtype(model) == "float32":
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _layers(model):
    """Every layer inside `model`, nested models' layers included, through
    the public `Model.layers` (a plain layer has none)."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _layers(layer)
