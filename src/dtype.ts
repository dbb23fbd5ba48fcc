/** The float type of a model, fixed at construction so every call site sees one array class. */
export type DType = 'float32' | 'float64'

/** A flat buffer of the model's float type. */
export type FloatArray = Float32Array | Float64Array

/** The constructor for a dtype's arrays. */
export type FloatArrayConstructor = Float32ArrayConstructor | Float64ArrayConstructor

export function arrayTypeOf(dtype: DType): FloatArrayConstructor {
  return dtype === 'float64' ? Float64Array : Float32Array
}

/** A new zeroed buffer of `length` floats of the same class as `like`. */
export function zerosLike(like: FloatArray, length: number): FloatArray {
  return like instanceof Float64Array ? new Float64Array(length) : new Float32Array(length)
}
