/**
 * Convolution and max-pooling kernels of the `native` backend, on TensorFlow.js's layouts (activations
 * NHWC, filters [kh, kw, in, out]). Geometry comes from tfjs's own computeConv2DInfo/computePool2DInfo, so
 * padding and output sizes are exactly the stock kernels'. Anything outside what the addon handles
 * (NCHW, non-float32, a geometry oneDNN would size differently, activations other than relu) goes to the
 * stock cpu kernel.
 */
import * as tf from "@tensorflow/tfjs";
import type { NativeAddon } from "../native/addon.js";
import { type KernelBuilder, type NativeKernelArgs, nativeArgs, requireInput } from "./native-kernel-util.js";

type Conv2DInfo = tf.backend_util.Conv2DInfo;
type Shape4 = [number, number, number, number];

/** oneDNN derives the output size from the padding; reject geometries where it would disagree with tfjs. */
function oneDnnAgrees(info: Conv2DInfo): boolean {
  const { top, bottom, left, right } = info.padInfo;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) return false;
  const outH =
    Math.floor((info.inHeight + top + bottom - info.effectiveFilterHeight) / info.strideHeight) + 1;
  const outW = Math.floor((info.inWidth + left + right - info.effectiveFilterWidth) / info.strideWidth) + 1;
  return outH === info.outHeight && outW === info.outWidth && info.outHeight > 0 && info.outWidth > 0;
}

/** The addon's 17-number conv geometry (native/src/conv.cc); also the training fast path's. */
export function convGeometryOf(info: Conv2DInfo): Int32Array {
  const { top, left, bottom, right } = info.padInfo;
  return Int32Array.of(
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outChannels,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    top,
    left,
    bottom,
    right,
  );
}

function isNHWC(attrs: tf.NamedAttrMap): boolean {
  return (attrs["dataFormat"] ?? "NHWC") === "NHWC";
}

function convInfoFor(
  args: NativeKernelArgs,
  inShape: number[],
  filterShape: number[],
  dilations: unknown,
): Conv2DInfo {
  const { attrs } = args;
  return tf.backend_util.computeConv2DInfo(
    inShape as Shape4,
    filterShape as Shape4,
    attrs["strides"] as [number, number],
    (dilations ?? 1) as [number, number],
    attrs["pad"] as "same" | "valid",
    attrs["dimRoundingMode"] as "floor" | undefined,
    false,
    "channelsLast",
  );
}

const allFloat = (...infos: (tf.TensorInfo | undefined)[]) =>
  infos.every((info) => info === undefined || info.dtype === "float32");

export const conv2D: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const x = requireInput(args, "x");
  const filter = requireInput(args, "filter");
  if (!isNHWC(args.attrs) || !allFloat(x, filter) || x.shape.length !== 4) return stock(params);
  const info = convInfoFor(args, x.shape, filter.shape, args.attrs["dilations"]);
  if (!oneDnnAgrees(info)) return stock(params);
  const y = args.backend.pool.allocate(tf.util.sizeFromShape(info.outShape));
  addon.conv2d(args.backend.floats(x), args.backend.floats(filter), null, y, convGeometryOf(info), false);
  return args.backend.output(info.outShape, y);
};

/** Conv + bias + relu in one oneDNN call (inference: tfjs does not fuse while recording gradients). */
export const fusedConv2D: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const x = requireInput(args, "x");
  const filter = requireInput(args, "filter");
  const bias = args.inputs["bias"];
  const activation = args.attrs["activation"] ?? "linear";
  if (!isNHWC(args.attrs) || !allFloat(x, filter, bias) || x.shape.length !== 4) return stock(params);
  if (activation !== "linear" && activation !== "relu") return stock(params);
  const info = convInfoFor(args, x.shape, filter.shape, args.attrs["dilations"]);
  if (!oneDnnAgrees(info)) return stock(params);
  if (bias !== undefined && tf.util.sizeFromShape(bias.shape) !== info.outChannels) return stock(params);
  const y = args.backend.pool.allocate(tf.util.sizeFromShape(info.outShape));
  const biasValues = bias === undefined ? null : args.backend.floats(bias);
  addon.conv2d(
    args.backend.floats(x),
    args.backend.floats(filter),
    biasValues,
    y,
    convGeometryOf(info),
    activation === "relu",
  );
  return args.backend.output(info.outShape, y);
};

export const conv2DBackpropInput: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const dy = requireInput(args, "dy");
  const filter = requireInput(args, "filter");
  const inputShape = args.attrs["inputShape"] as number[];
  if (!isNHWC(args.attrs) || !allFloat(dy, filter) || inputShape.length !== 4) return stock(params);
  const info = convInfoFor(args, inputShape, filter.shape, 1);
  if (!oneDnnAgrees(info)) return stock(params);
  const dx = args.backend.pool.allocate(tf.util.sizeFromShape(inputShape));
  addon.conv2dBackpropInput(args.backend.floats(dy), args.backend.floats(filter), dx, convGeometryOf(info));
  return args.backend.output([...inputShape], dx);
};

export const conv2DBackpropFilter: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const x = requireInput(args, "x");
  const dy = requireInput(args, "dy");
  const filterShape = args.attrs["filterShape"] as number[];
  if (!isNHWC(args.attrs) || !allFloat(x, dy) || x.shape.length !== 4) return stock(params);
  const info = convInfoFor(args, x.shape, filterShape, 1);
  if (!oneDnnAgrees(info)) return stock(params);
  const dw = args.backend.pool.allocate(tf.util.sizeFromShape(filterShape));
  addon.conv2dBackpropFilter(args.backend.floats(x), args.backend.floats(dy), dw, convGeometryOf(info));
  return args.backend.output([...filterShape], dw);
};

function poolInfoFor(args: NativeKernelArgs, inShape: number[]): Conv2DInfo {
  const { attrs } = args;
  return tf.backend_util.computePool2DInfo(
    inShape as Shape4,
    attrs["filterSize"] as [number, number],
    attrs["strides"] as [number, number],
    1,
    attrs["pad"] as "same" | "valid",
    attrs["dimRoundingMode"] as "floor" | undefined,
  );
}

/** The addon's 12-number pooling geometry (native/src/pool.cc); also the training fast path's. */
export function poolGeometryOf(info: Conv2DInfo): Int32Array {
  return Int32Array.of(
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
  );
}

export const maxPool: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const x = requireInput(args, "x");
  if (x.dtype !== "float32" || x.shape.length !== 4) return stock(params);
  const info = poolInfoFor(args, x.shape);
  const y = args.backend.pool.allocate(tf.util.sizeFromShape(info.outShape));
  addon.maxPool(args.backend.floats(x), y, poolGeometryOf(info));
  return args.backend.output(info.outShape, y);
};

export const maxPoolGrad: KernelBuilder = (addon: NativeAddon, stock) => (params) => {
  const args = nativeArgs(params);
  const dy = requireInput(args, "dy");
  const input = requireInput(args, "input");
  if (!allFloat(dy, input) || input.shape.length !== 4) return stock(params);
  const info = poolInfoFor(args, input.shape);
  const dx = args.backend.pool.allocate(tf.util.sizeFromShape(input.shape));
  addon.maxPoolGrad(args.backend.floats(dy), args.backend.floats(input), dx, poolGeometryOf(info));
  return args.backend.output([...input.shape], dx);
};
