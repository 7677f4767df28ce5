/**
 * A one-pass ReLU gradient for the `native` backend.
 *
 * TensorFlow.js differentiates Relu as mul(dy, cast(step(x))): two full passes and two fresh arrays per
 * ReLU layer, a noticeable share of a CNN step. Gradients are registered per kernel name for all backends,
 * so the replacement keeps the stock gradient for every other backend and on native runs one kernel,
 * FedsimReluGrad, that yields exactly what the stock formula gives (dy where x > 0, dy·0 elsewhere, NaN
 * for NaN x).
 */
import * as tf from "@tensorflow/tfjs";
import { BINARY_OPS, type NativeAddon } from "../native/addon.js";
import { NATIVE_BACKEND } from "./native-backend.js";
import { binaryKernel } from "./native-math-kernels.js";

export const RELU_GRAD_KERNEL = "FedsimReluGrad";

const NATIVE_GRADIENT = Symbol.for("fedsim.nativeReluGradient");

export function registerNativeGradients(addon: NativeAddon): void {
  if (tf.getKernel(RELU_GRAD_KERNEL, NATIVE_BACKEND) === undefined) {
    const unreachable: tf.KernelFunc = () => {
      throw new Error(`${RELU_GRAD_KERNEL}: inputs must be float32 and of one shape`);
    };
    // dy and x have one shape, so binary's plain path always applies (a = dy, b = x).
    const kernel = binaryKernel(BINARY_OPS.ReluGrad)(addon, unreachable);
    tf.registerKernel({
      kernelName: RELU_GRAD_KERNEL,
      backendName: NATIVE_BACKEND,
      kernelFunc: (params) =>
        kernel({ ...params, inputs: { a: params.inputs["dy"], b: params.inputs["x"] } }),
    });
  }
  const stock = tf.getGradient(tf.Relu);
  if (stock === undefined || (stock as unknown as Record<symbol, boolean>)[NATIVE_GRADIENT]) return;
  const config: tf.GradConfig = {
    kernelName: tf.Relu,
    inputsToSave: ["x"],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const single = Array.isArray(dy) ? dy[0] : dy;
      if (tf.getBackend() !== NATIVE_BACKEND || single.dtype !== "float32" || x.dtype !== "float32") {
        return stock.gradFunc(dy, saved, attrs);
      }
      return { x: () => tf.engine().runKernel(RELU_GRAD_KERNEL, { dy: single, x }) as tf.Tensor };
    },
  };
  Object.defineProperty(config, NATIVE_GRADIENT, { value: true });
  tf.registerGradient(config);
}
