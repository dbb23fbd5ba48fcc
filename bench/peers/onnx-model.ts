import { ProtoWriter } from './protobuf.js'
import type { LstmWeights } from './weights.js'

// Field numbers and enum values from onnx/onnx.proto (proto2, package onnx).
const ModelProto = { irVersion: 1, producerName: 2, producerVersion: 3, graph: 7, opsetImport: 8 }
const OperatorSetIdProto = { domain: 1, version: 2 }
const GraphProto = { node: 1, name: 2, initializer: 5, input: 11, output: 12 }
const NodeProto = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 }
const AttributeProto = { name: 1, f: 2, i: 3, type: 20 }
const AttributeType = { FLOAT: 1, INT: 2 }
const TensorProto = { dims: 1, dataType: 2, name: 8, rawData: 9 }
const DataType = { FLOAT: 1, INT64: 7 }
const ValueInfoProto = { name: 1, type: 2 }
const TypeProto = { tensorType: 1 }
const TypeProtoTensor = { elemType: 1, shape: 2 }
const TensorShapeProto = { dim: 1 }
const Dimension = { dimValue: 1 }

const IR_VERSION = 8
const OPSET = 17

type Attribute = { name: string; int: number } | { name: string; float: number }

function attribute(a: Attribute): ProtoWriter {
  const w = new ProtoWriter().string(AttributeProto.name, a.name)
  if ('int' in a) return w.varint(AttributeProto.type, AttributeType.INT).varint(AttributeProto.i, a.int)
  return w.varint(AttributeProto.type, AttributeType.FLOAT).float(AttributeProto.f, a.float)
}

/** A node; an empty string in `inputs` or `outputs` skips an optional slot, as the ONNX spec allows. */
function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: readonly Attribute[] = [],
): ProtoWriter {
  const w = new ProtoWriter()
  for (const i of inputs) w.string(NodeProto.input, i)
  for (const o of outputs) w.string(NodeProto.output, o)
  w.string(NodeProto.name, `${opType}_${outputs.find((o) => o !== '')}`)
  w.string(NodeProto.opType, opType)
  for (const a of attributes) w.message(NodeProto.attribute, attribute(a))
  return w
}

/** An initializer, its values little-endian in raw_data. */
function tensor(name: string, dims: readonly number[], values: Float32Array | BigInt64Array): ProtoWriter {
  const count = dims.reduce((a, b) => a * b, 1)
  if (values.length !== count) throw new RangeError(`${name}: ${values.length} values for dims [${dims}]`)
  const raw = new Uint8Array(values.length * values.BYTES_PER_ELEMENT)
  const view = new DataView(raw.buffer)
  if (values instanceof Float32Array)
    for (let k = 0; k < values.length; k++) view.setFloat32(k * 4, values[k]!, true)
  else for (let k = 0; k < values.length; k++) view.setBigInt64(k * 8, values[k]!, true)
  const w = new ProtoWriter()
  w.packedVarints(TensorProto.dims, dims)
  w.varint(TensorProto.dataType, values instanceof Float32Array ? DataType.FLOAT : DataType.INT64)
  w.string(TensorProto.name, name)
  w.bytes(TensorProto.rawData, raw)
  return w
}

/** A float tensor graph input or output of fixed shape. */
function valueInfo(name: string, dims: readonly number[]): ProtoWriter {
  const shape = new ProtoWriter()
  for (const d of dims) shape.message(TensorShapeProto.dim, new ProtoWriter().varint(Dimension.dimValue, d))
  const tensorType = new ProtoWriter()
    .varint(TypeProtoTensor.elemType, DataType.FLOAT)
    .message(TypeProtoTensor.shape, shape)
  return new ProtoWriter()
    .string(ValueInfoProto.name, name)
    .message(ValueInfoProto.type, new ProtoWriter().message(TypeProto.tensorType, tensorType))
}

/**
 * PyTorch's gate blocks i, f, g, o reordered to ONNX's i, o, f, c: each block is `blockSize` contiguous
 * values (H rows of a weight matrix, or H biases).
 */
function toOnnxGateOrder(pytorch: Float32Array, blockSize: number): Float32Array {
  const out = new Float32Array(pytorch.length)
  const fromPytorchBlock = [0, 3, 1, 2] // ONNX block k comes from PyTorch block fromPytorchBlock[k]
  fromPytorchBlock.forEach((src, dst) => {
    out.set(pytorch.subarray(src * blockSize, (src + 1) * blockSize), dst * blockSize)
  })
  return out
}

/** Names of the step model's graph inputs and outputs. */
export const onnxStepNames = { x: 'x', h0: 'h0', c0: 'c0', y: 'y', h1: 'h1', c1: 'c1' } as const

/**
 * The bytes of an ONNX model (IR 8, opset 17) computing ONE step of the LSTM plus its linear head:
 * inputs x [1,1,I], h0 [1,1,H], c0 [1,1,H]; outputs y [1,O], h1 [1,1,H], c1 [1,1,H]. The state goes
 * out and back in, so the caller carries it between events.
 *
 * @example
 * const bytes = buildOnnxLstmStepModel(randomLstmWeights(8, 64, 4, 42))
 * const session = await ort.InferenceSession.create(bytes)
 */
export function buildOnnxLstmStepModel(w: LstmWeights): Uint8Array {
  const { inputSize: I, hiddenSize: H, outputSize: O } = w
  const n = onnxStepNames
  const bias = new Float32Array(8 * H)
  bias.set(toOnnxGateOrder(w.bIh, H), 0)
  bias.set(toOnnxGateOrder(w.bHh, H), 4 * H)
  const graph = new ProtoWriter()
  graph.message(
    GraphProto.node,
    node('LSTM', [n.x, 'W', 'R', 'B', '', n.h0, n.c0], ['', n.h1, n.c1], [{ name: 'hidden_size', int: H }]),
  )
  graph.message(GraphProto.node, node('Reshape', [n.h1, 'h_shape'], ['h_flat']))
  graph.message(
    GraphProto.node,
    node('Gemm', ['h_flat', 'head_W', 'head_b'], [n.y], [{ name: 'transB', int: 1 }]),
  )
  graph.string(GraphProto.name, 'lstm_step')
  graph.message(GraphProto.initializer, tensor('W', [1, 4 * H, I], toOnnxGateOrder(w.wIh, H * I)))
  graph.message(GraphProto.initializer, tensor('R', [1, 4 * H, H], toOnnxGateOrder(w.wHh, H * H)))
  graph.message(GraphProto.initializer, tensor('B', [1, 8 * H], bias))
  graph.message(GraphProto.initializer, tensor('h_shape', [2], BigInt64Array.of(1n, BigInt(H))))
  graph.message(GraphProto.initializer, tensor('head_W', [O, H], w.headW))
  graph.message(GraphProto.initializer, tensor('head_b', [O], w.headB))
  graph.message(GraphProto.input, valueInfo(n.x, [1, 1, I]))
  graph.message(GraphProto.input, valueInfo(n.h0, [1, 1, H]))
  graph.message(GraphProto.input, valueInfo(n.c0, [1, 1, H]))
  graph.message(GraphProto.output, valueInfo(n.y, [1, O]))
  graph.message(GraphProto.output, valueInfo(n.h1, [1, 1, H]))
  graph.message(GraphProto.output, valueInfo(n.c1, [1, 1, H]))

  return new ProtoWriter()
    .varint(ModelProto.irVersion, IR_VERSION)
    .string(ModelProto.producerName, 'rxrnn-bench')
    .string(ModelProto.producerVersion, '0')
    .message(ModelProto.graph, graph)
    .message(
      ModelProto.opsetImport,
      new ProtoWriter().string(OperatorSetIdProto.domain, '').varint(OperatorSetIdProto.version, OPSET),
    )
    .finish()
}
