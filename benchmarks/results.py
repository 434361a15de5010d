"""The typed results of a benchmark run, free of TensorFlow: what
`harness.run` returns and `report` writes."""

import dataclasses
import statistics


@dataclasses.dataclass(frozen=True)
class Spread:
    """The median of some values and their quartiles (the middle half lies
    in [low, high]; with fewer than 4 values, their minimum and maximum)."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values):
        values = sorted(values)
        if len(values) < 4:
            return cls(statistics.median(values), values[0], values[-1])
        low, _, high = statistics.quantiles(values, n=4, method="inclusive")
        return cls(statistics.median(values), low, high)

    def ratio(self):
        """"1.02× (0.97–1.06)", for the tables."""
        return f"{self.median:.2f}× ({self.low:.2f}–{self.high:.2f})"


@dataclasses.dataclass
class Row:
    """One variant: a model of one architecture, implementation and precision,
    trained at one batch size, compiled (XLA) or not.

    Rates are training images per second; `vs_*` are paired: the ratio of
    this variant's rate to another's timed in the same round, one per round.

    Attributes:
        architecture, implementation, precision, policy, batch_size, xla:
            what was trained (`policy`: the dtype policy "auto" resolved to).
        images_per_s: wall-clock img/s of the timed blocks (median, quartiles).
        images_per_cpu_s: img per second of process CPU time (all threads):
            what other processes on the cores change least.
        vs_plain, vs_plain_cpu: against the plain loop of the same
            architecture, batch and compilation, per round (wall, CPU time);
            None for the plain loop itself.
        vs_uncompiled: a compiled variant against itself uncompiled, per
            round (wall); None if not compiled.
        rounds: rounds timed.
        gflops_per_image: training FLOPs per image (`workloads.training_flops`), GFLOP.
        peak_dtype: the matmul dtype its share of the peak is of.
        percent_of_peak: achieved FLOP/s over that dtype's matmul peak, %.
        first_step_s: building, tracing, compiling and one step, s.
        peak_mib, before_fit_mib: VmHWM of a fresh process training it, and
            VmRSS before `fit`, MiB (None: not measured).
    """

    architecture: str
    implementation: str
    precision: str
    policy: str
    batch_size: int
    xla: bool
    images_per_s: Spread
    images_per_cpu_s: Spread
    rounds: int
    gflops_per_image: float
    peak_dtype: str
    percent_of_peak: float
    first_step_s: float
    vs_plain: Spread | None = None
    vs_plain_cpu: Spread | None = None
    vs_uncompiled: Spread | None = None
    peak_mib: float | None = None
    before_fit_mib: float | None = None

    #: The fields that hold a `Spread` (or None).
    SPREADS = ("images_per_s", "images_per_cpu_s", "vs_plain", "vs_plain_cpu", "vs_uncompiled")

    @property
    def key(self):
        return (self.architecture, self.implementation, self.precision, self.batch_size,
                self.xla)

    def flat(self):
        """A CSV row: each `Spread` as three columns, name, name_low, name_high."""
        flat = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in self.SPREADS:
                for suffix, part in (("", "median"), ("_low", "low"), ("_high", "high")):
                    flat[field.name + suffix] = None if value is None else round(
                        getattr(value, part), 3)
            else:
                flat[field.name] = value
        return flat


@dataclasses.dataclass(frozen=True)
class ElboRun:
    """keras-vae trained a fixed number of steps, then scored.

    Attributes:
        validation_elbo: mean over held-out images, nats per image (β = 1,
            one seeded z sample per image).
        same_weights_elbo: {policy: ELBO} of these (float32-trained) weights
            scored by networks in another precision, nats per image.
        train_s: training time, s.
    """

    architecture: str
    precision: str
    policy: str
    seed: int
    steps: int
    batch_size: int
    validation_elbo: float
    train_s: float
    same_weights_elbo: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LiveRate:
    """keras-vae (automatic precision) trained on the live `make_datasets`
    pipeline and on cached batches, img/s (medians of paired rounds)."""

    architecture: str
    batch_size: int
    live: float
    cached: float


@dataclasses.dataclass
class Results:
    """Everything one run measured.

    Attributes:
        rows: one `Row` per variant.
        matmul_gflops: {dtype: the matmul peak of each round, GFLOP/s}.
        elbo: the `ElboRun`s.
        pipelines: (source, size, channels, img/s) of each input pipeline alone.
        live: the `LiveRate`s.
        load_averages: the 1-minute load average at the start, after each
            round and at the end.
    """

    rows: list
    matmul_gflops: dict
    elbo: list = dataclasses.field(default_factory=list)
    pipelines: list = dataclasses.field(default_factory=list)
    live: list = dataclasses.field(default_factory=list)
    load_averages: list = dataclasses.field(default_factory=list)

    def peak(self, dtype):
        """The median matmul peak of `dtype`, GFLOP/s."""
        return statistics.median(self.matmul_gflops[dtype])
