/**
 * The addon's convolution and pooling geometries (native/src/conv.cc, pool.cc) for the training fast path,
 * computed by TensorFlow.js's own computeConv2DInfo/computePool2DInfo and laid out by the native backend's
 * kernels' own builders (common/tf/native-conv-kernels.ts), so "same" padding and output sizes are tfjs's bit for bit.
 * The arrays are built for a batch of one; `withBatch` sets the batch size (element 0 of both layouts),
 * which no other element depends on.
 */
import * as tf from "@tensorflow/tfjs";
import { convGeometryOf, poolGeometryOf } from "../tf/native-conv-kernels.js";

type Conv2DInfo = tf.backend_util.Conv2DInfo;
type Pair = [number, number];

/** An [h, w, c] activation shape without the batch axis. */
export type ImageShape = [number, number, number];

export interface ConvSettings {
  /** [kh, kw, in, out], as the layer's kernel (HWIO). */
  filterShape: [number, number, number, number];
  strides: Pair;
  dilations: Pair;
  padding: "same" | "valid";
}

export interface PoolSettings {
  poolSize: Pair;
  strides: Pair;
  padding: "same" | "valid";
}

export interface PlannedGeometry {
  /** For a batch of one; see withBatch. */
  geometry: Int32Array;
  outShape: ImageShape;
}

/** The 17-number conv geometry for `inShape`, or why the addon cannot run it as tfjs sizes it. */
export function convGeometry(inShape: ImageShape, settings: ConvSettings): PlannedGeometry | string {
  const info = tf.backend_util.computeConv2DInfo(
    [1, ...inShape],
    settings.filterShape,
    settings.strides,
    settings.dilations,
    settings.padding,
    undefined,
    false,
    "channelsLast",
  );
  const problem = oneDnnDisagreement(info);
  if (problem !== undefined) return problem;
  const geometry = convGeometryOf(info);
  return { geometry, outShape: [info.outHeight, info.outWidth, info.outChannels] };
}

/** The 12-number max-pool geometry for `inShape`, or why it is empty. */
export function poolGeometry(inShape: ImageShape, settings: PoolSettings): PlannedGeometry | string {
  const info = tf.backend_util.computePool2DInfo(
    [1, ...inShape],
    settings.poolSize,
    settings.strides,
    1,
    settings.padding,
    undefined,
    "channelsLast",
  );
  if (info.outHeight < 1 || info.outWidth < 1) {
    return `pooling [${inShape.join(",")}] gives an empty ${info.outHeight}x${info.outWidth} output`;
  }
  const geometry = poolGeometryOf(info);
  return { geometry, outShape: [info.outHeight, info.outWidth, info.inChannels] };
}

/** A copy of a batch-of-one geometry for `batchSize` examples. */
export function withBatch(geometry: Int32Array, batchSize: number): Int32Array {
  const copy = geometry.slice();
  copy[0] = batchSize;
  return copy;
}

/** oneDNN derives the output size from the padding: refuse geometries where it would disagree with tfjs. */
function oneDnnDisagreement(info: Conv2DInfo): string | undefined {
  const { top, bottom, left, right } = info.padInfo;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) return "the convolution has negative padding";
  const outH =
    Math.floor((info.inHeight + top + bottom - info.effectiveFilterHeight) / info.strideHeight) + 1;
  const outW = Math.floor((info.inWidth + left + right - info.effectiveFilterWidth) / info.strideWidth) + 1;
  if (outH !== info.outHeight || outW !== info.outWidth || info.outHeight < 1 || info.outWidth < 1) {
    return `oneDNN would size the ${info.outHeight}x${info.outWidth} convolution output as ${outH}x${outW}`;
  }
  return undefined;
}
