;; rxrnn WebAssembly SIMD kernels (f32x4). Assembled by scripts/build-wasm.ts into
;; src/wasm/kernels.generated.ts; src/wasm/kernels.ts is the typed wrapper.
;;
;; Conventions
;; - Every pointer is a byte offset into the imported memory; arrays are 4-byte aligned but not
;;   necessarily 16-byte aligned (wasm v128 loads and stores need no alignment).
;; - Sizes are arbitrary (0 does nothing). Loops run over whole 4-lane chunks; the last 1..3
;;   lanes are handled by scalar code in the matrix kernels and by the partial loads and stores
;;   $ldp / $stp elsewhere, so that each formula is written once.
;; - Pointwise kernels read every input lane before they write the same output lane, so an output
;;   may be the input of the same layout (in place; the cells allow cand = state_in, as in JS).
;; - Matrix outputs must not overlap their inputs, except gemv_bias(b = y), which is gemv_acc.
;; - Nothing here calls out, allocates or grows the memory.

(module
  (import "env" "memory" (memory 1))

  ;; ------------------------------------------------------------------------------------------
  ;; Partial chunks: lanes [0, n) for n in 1..3; the other lanes load as 0 and are never stored.

  (func $ldp (param $p i32) (param $n i32) (result v128)
    (local $v v128)
    (if (i32.eq (local.get $n) (i32.const 1))
      (then (return (v128.load32_zero (local.get $p)))))
    (local.set $v (v128.load64_zero (local.get $p)))
    (if (i32.eq (local.get $n) (i32.const 3))
      (then (local.set $v (v128.load32_lane offset=8 2 (local.get $p) (local.get $v)))))
    (local.get $v))

  (func $stp (param $p i32) (param $v v128) (param $n i32)
    (if (i32.eq (local.get $n) (i32.const 1))
      (then
        (v128.store32_lane 0 (local.get $p) (local.get $v))
        (return)))
    (v128.store64_lane 0 (local.get $p) (local.get $v))
    (if (i32.eq (local.get $n) (i32.const 3))
      (then (v128.store32_lane offset=8 2 (local.get $p) (local.get $v)))))

  ;; ------------------------------------------------------------------------------------------
  ;; Elementwise array loops, all in one shape ("tail first"): for n >= 4 the LAST four lanes
  ;; [n - 4, n) are loaded before the loop; the loop runs over the whole chunks below n - 4 and
  ;; then once more on that saved tail vector, which is stored after the loop (overlapping lanes
  ;; get the same values again). For n < 4 the tail is a partial load/store. So an output may
  ;; equal its input (in place), no lane is read after it was written, and the loop body holds no
  ;; call (a call, even on a cold branch, makes V8 spill every register around the loop).

  ;; Constants of the activations. They live in mutable globals because V8 would otherwise
  ;; rematerialise every v128.const at each use inside a loop (3 instructions each); a global read
  ;; into a local before the loop stays in a register or a stack slot.
  (global $LOG2E (mut v128) (v128.const f32x4 1.44269504089 1.44269504089 1.44269504089 1.44269504089))
  (global $MAGIC (mut v128) (v128.const f32x4 12582912 12582912 12582912 12582912))
  (global $LN2HI (mut v128) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))
  (global $LN2LO (mut v128) (v128.const f32x4 2.12194440e-4 2.12194440e-4 2.12194440e-4 2.12194440e-4))
  (global $P0 (mut v128) (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
  (global $P1 (mut v128) (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3))
  (global $P2 (mut v128) (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3))
  (global $P3 (mut v128) (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2))
  (global $P4 (mut v128) (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1))
  (global $P5 (mut v128) (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1))
  (global $Q0 (mut v128) (v128.const f32x4 -5.70498872745e-3 -5.70498872745e-3 -5.70498872745e-3 -5.70498872745e-3))
  (global $Q1 (mut v128) (v128.const f32x4 2.06390887954e-2 2.06390887954e-2 2.06390887954e-2 2.06390887954e-2))
  (global $Q2 (mut v128) (v128.const f32x4 -5.37397155531e-2 -5.37397155531e-2 -5.37397155531e-2 -5.37397155531e-2))
  (global $Q3 (mut v128) (v128.const f32x4 1.33314422036e-1 1.33314422036e-1 1.33314422036e-1 1.33314422036e-1))
  (global $Q4 (mut v128) (v128.const f32x4 -3.33332819422e-1 -3.33332819422e-1 -3.33332819422e-1 -3.33332819422e-1))
  (global $ONE (mut v128) (v128.const f32x4 1 1 1 1))
  (global $TWO (mut v128) (v128.const f32x4 2 2 2 2))
  (global $HI (mut v128) (v128.const f32x4 88 88 88 88))
  (global $LO (mut v128) (v128.const f32x4 -87 -87 -87 -87))
  (global $SMALL (mut v128) (v128.const f32x4 0.625 0.625 0.625 0.625))
  (global $SIGN (mut v128) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))
  (global $BIAS (mut v128) (v128.const i32x4 127 127 127 127))

  ;; exp(x) for x in [-87, 88] (so that 2^n is a normal float, n in [-126, 127]):
  ;; - n = nearest(x log2e) by the 1.5 * 2^23 trick: t = x log2e + 1.5 * 2^23 holds n in its low
  ;;   mantissa bits, so n = t - 1.5 * 2^23 and 2^n = (bits(t) + 127) << 23 (the magic's own bits
  ;;   shift out), cheaper than f32x4.nearest plus a saturating conversion;
  ;; - Cody-Waite: r = x - n ln2_hi - n ln2_lo with ln2_hi = 0.693359375 (9 significant bits, so
  ;;   n ln2_hi and x - n ln2_hi are exact), |r| <= ln2/2 (a hair more after ties);
  ;; - Cephes' expf polynomial, e^r = 1 + r + r^2 P5(r) (degree 7, about 1 ulp), times 2^n.
  ;; Measured over [-87, 88]: relative error <= 8.1e-8 (1.4 ulp). $sigmoid_n and $tanh_n inline
  ;; this same sequence (a call per vector would cost more than the math).
  (func $exp (param $x v128) (result v128)
    (local $t v128) (local $n v128) (local $r v128) (local $z v128) (local $y v128)
    (local.set $t (f32x4.add (f32x4.mul (local.get $x) (global.get $LOG2E)) (global.get $MAGIC)))
    (local.set $n (f32x4.sub (local.get $t) (global.get $MAGIC)))
    (local.set $r (f32x4.add
      (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) (global.get $LN2HI)))
      (f32x4.mul (local.get $n) (global.get $LN2LO))))
    (local.set $z (f32x4.mul (local.get $r) (local.get $r)))
    (local.set $y (f32x4.add (f32x4.mul (global.get $P0) (local.get $r)) (global.get $P1)))
    (local.set $y (f32x4.add (f32x4.mul (local.get $y) (local.get $r)) (global.get $P2)))
    (local.set $y (f32x4.add (f32x4.mul (local.get $y) (local.get $r)) (global.get $P3)))
    (local.set $y (f32x4.add (f32x4.mul (local.get $y) (local.get $r)) (global.get $P4)))
    (local.set $y (f32x4.add (f32x4.mul (local.get $y) (local.get $r)) (global.get $P5)))
    (local.set $y (f32x4.add
      (f32x4.add (f32x4.mul (local.get $y) (local.get $z)) (local.get $r))
      (global.get $ONE)))
    (f32x4.mul (local.get $y)
      (i32x4.shl (i32x4.add (local.get $t) (global.get $BIAS)) (i32.const 23))))

  ;; y[i] = exp(x[i]) for i < n, x clamped to [-87, 88]; y may equal x.
  (func (export "vexp") (param $y i32) (param $x i32) (param $n i32)
    (local $k i32) (local $last i32) (local $full i32) (local $v v128) (local $xt v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $xt (v128.load (i32.add (local.get $x) (local.get $last)))))
      (else (local.set $xt (call $ldp (local.get $x) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (if (local.get $full)
          (then (local.set $v (v128.load (i32.add (local.get $x) (local.get $k)))))
          (else (local.set $v (local.get $xt))))
        (local.set $v (call $exp
          (f32x4.pmax (f32x4.pmin (local.get $v) (global.get $HI)) (global.get $LO))))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $y) (local.get $k)) (local.get $v))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (i32.add (local.get $y) (local.get $last)) (local.get $v)))
      (else (call $stp (local.get $y) (local.get $v) (local.get $n)))))

  ;; y[i] = sigmoid(x[i]) = 1 / (1 + e^-x) for i < n; y may equal x.
  ;; -x is clamped to [-87, 88], which changes nothing a float can show (sigmoid(87) rounds to 1,
  ;; sigmoid(-88) gives 6e-39 instead of a smaller subnormal); pmin/pmax with the value first keep
  ;; a NaN, so NaN propagates as through Math.exp. Measured abs. error <= 9e-8.
  (func $sigmoid_n (export "vsigmoid") (param $y i32) (param $x i32) (param $n i32)
    (local $k i32) (local $last i32) (local $full i32)
    (local $v v128) (local $xt v128) (local $t v128) (local $e v128) (local $r v128) (local $z v128)
    (local $log2e v128) (local $magic v128) (local $ln2hi v128) (local $ln2lo v128)
    (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128) (local $p4 v128) (local $p5 v128)
    (local $one v128) (local $hi v128) (local $lo v128) (local $bias v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (local.set $log2e (global.get $LOG2E))
    (local.set $magic (global.get $MAGIC))
    (local.set $ln2hi (global.get $LN2HI))
    (local.set $ln2lo (global.get $LN2LO))
    (local.set $p0 (global.get $P0))
    (local.set $p1 (global.get $P1))
    (local.set $p2 (global.get $P2))
    (local.set $p3 (global.get $P3))
    (local.set $p4 (global.get $P4))
    (local.set $p5 (global.get $P5))
    (local.set $one (global.get $ONE))
    (local.set $hi (global.get $HI))
    (local.set $lo (global.get $LO))
    (local.set $bias (global.get $BIAS))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $xt (v128.load (i32.add (local.get $x) (local.get $last)))))
      (else (local.set $xt (call $ldp (local.get $x) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (if (local.get $full)
          (then (local.set $v (v128.load (i32.add (local.get $x) (local.get $k)))))
          (else (local.set $v (local.get $xt))))
        (local.set $v (f32x4.pmax (f32x4.pmin (f32x4.neg (local.get $v)) (local.get $hi)) (local.get $lo)))
        ;; e = exp(v), as $exp
        (local.set $t (f32x4.add (f32x4.mul (local.get $v) (local.get $log2e)) (local.get $magic)))
        (local.set $e (f32x4.sub (local.get $t) (local.get $magic)))
        (local.set $r (f32x4.add
          (f32x4.sub (local.get $v) (f32x4.mul (local.get $e) (local.get $ln2hi)))
          (f32x4.mul (local.get $e) (local.get $ln2lo))))
        (local.set $z (f32x4.mul (local.get $r) (local.get $r)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $p0) (local.get $r)) (local.get $p1)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p2)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p3)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p4)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p5)))
        (local.set $e (f32x4.add (f32x4.add (f32x4.mul (local.get $e) (local.get $z)) (local.get $r)) (local.get $one)))
        (local.set $e (f32x4.mul (local.get $e)
          (i32x4.shl (i32x4.add (local.get $t) (local.get $bias)) (i32.const 23))))
        (local.set $v (f32x4.div (local.get $one) (f32x4.add (local.get $one) (local.get $e))))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $y) (local.get $k)) (local.get $v))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (i32.add (local.get $y) (local.get $last)) (local.get $v)))
      (else (call $stp (local.get $y) (local.get $v) (local.get $n)))))

  ;; y[i] = tanh(x[i]) for i < n; y may equal x.
  ;; |x| < 0.625: x + x^3 P4(x^2), Cephes' tanhf minimax polynomial (exact for tiny x, keeps -0).
  ;; Otherwise sign(x) (1 - 2 / (e^(2|x|) + 1)), 2|x| clamped to 88: it saturates to exactly +-1
  ;; from |x| of about 9.1 on, where the rounded true value does. Measured abs. error <= 7.5e-8.
  (func $tanh_n (export "vtanh") (param $y i32) (param $x i32) (param $n i32)
    (local $k i32) (local $last i32) (local $full i32)
    (local $v v128) (local $xt v128) (local $a v128) (local $t v128) (local $e v128) (local $r v128)
    (local $z v128) (local $s v128) (local $mask v128)
    (local $log2e v128) (local $magic v128) (local $ln2hi v128) (local $ln2lo v128)
    (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128) (local $p4 v128) (local $p5 v128)
    (local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128) (local $q4 v128)
    (local $one v128) (local $two v128) (local $hi v128) (local $small v128) (local $sign v128) (local $bias v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (local.set $log2e (global.get $LOG2E))
    (local.set $magic (global.get $MAGIC))
    (local.set $ln2hi (global.get $LN2HI))
    (local.set $ln2lo (global.get $LN2LO))
    (local.set $p0 (global.get $P0))
    (local.set $p1 (global.get $P1))
    (local.set $p2 (global.get $P2))
    (local.set $p3 (global.get $P3))
    (local.set $p4 (global.get $P4))
    (local.set $p5 (global.get $P5))
    (local.set $q0 (global.get $Q0))
    (local.set $q1 (global.get $Q1))
    (local.set $q2 (global.get $Q2))
    (local.set $q3 (global.get $Q3))
    (local.set $q4 (global.get $Q4))
    (local.set $one (global.get $ONE))
    (local.set $two (global.get $TWO))
    (local.set $hi (global.get $HI))
    (local.set $small (global.get $SMALL))
    (local.set $sign (global.get $SIGN))
    (local.set $bias (global.get $BIAS))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $xt (v128.load (i32.add (local.get $x) (local.get $last)))))
      (else (local.set $xt (call $ldp (local.get $x) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (if (local.get $full)
          (then (local.set $v (v128.load (i32.add (local.get $x) (local.get $k)))))
          (else (local.set $v (local.get $xt))))
        (local.set $a (v128.andnot (local.get $v) (local.get $sign)))
        (local.set $mask (f32x4.lt (local.get $a) (local.get $small)))
        ;; e = exp(min(2|x|, 88)), as $exp
        (local.set $s (f32x4.pmin (f32x4.add (local.get $a) (local.get $a)) (local.get $hi)))
        (local.set $t (f32x4.add (f32x4.mul (local.get $s) (local.get $log2e)) (local.get $magic)))
        (local.set $e (f32x4.sub (local.get $t) (local.get $magic)))
        (local.set $r (f32x4.add
          (f32x4.sub (local.get $s) (f32x4.mul (local.get $e) (local.get $ln2hi)))
          (f32x4.mul (local.get $e) (local.get $ln2lo))))
        (local.set $z (f32x4.mul (local.get $r) (local.get $r)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $p0) (local.get $r)) (local.get $p1)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p2)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p3)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p4)))
        (local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) (local.get $p5)))
        (local.set $e (f32x4.add (f32x4.add (f32x4.mul (local.get $e) (local.get $z)) (local.get $r)) (local.get $one)))
        (local.set $e (f32x4.mul (local.get $e)
          (i32x4.shl (i32x4.add (local.get $t) (local.get $bias)) (i32.const 23))))
        ;; large |x|: sign(x) (1 - 2 / (e + 1)); $a becomes the sign bits of x
        (local.set $a (v128.and (local.get $v) (local.get $sign)))
        (local.set $e (v128.or
          (f32x4.sub (local.get $one) (f32x4.div (local.get $two) (f32x4.add (local.get $e) (local.get $one))))
          (local.get $a)))
        ;; small |x|: x + x z P4(z), z = x^2
        (local.set $z (f32x4.mul (local.get $v) (local.get $v)))
        (local.set $s (f32x4.add (f32x4.mul (local.get $q0) (local.get $z)) (local.get $q1)))
        (local.set $s (f32x4.add (f32x4.mul (local.get $s) (local.get $z)) (local.get $q2)))
        (local.set $s (f32x4.add (f32x4.mul (local.get $s) (local.get $z)) (local.get $q3)))
        (local.set $s (f32x4.add (f32x4.mul (local.get $s) (local.get $z)) (local.get $q4)))
        ;; (the sign of x or'ed in keeps tanh(-0) = -0, which x + (-0) would turn into +0)
        (local.set $s (v128.or (local.get $a)
          (f32x4.add (f32x4.mul (f32x4.mul (local.get $s) (local.get $z)) (local.get $v)) (local.get $v))))
        (local.set $v (v128.bitselect (local.get $s) (local.get $e) (local.get $mask)))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $y) (local.get $k)) (local.get $v))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (i32.add (local.get $y) (local.get $last)) (local.get $v)))
      (else (call $stp (local.get $y) (local.get $v) (local.get $n)))))

  ;; y[i] = a[i] + b[i] for i < n (y may equal a or b).
  (func $add_n (param $y i32) (param $a i32) (param $b i32) (param $n i32)
    (local $k i32) (local $last i32) (local $full i32) (local $v v128) (local $at v128) (local $bt v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $at (v128.load (i32.add (local.get $a) (local.get $last))))
        (local.set $bt (v128.load (i32.add (local.get $b) (local.get $last)))))
      (else
        (local.set $at (call $ldp (local.get $a) (local.get $n)))
        (local.set $bt (call $ldp (local.get $b) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $y) (local.get $k))
          (f32x4.add
            (v128.load (i32.add (local.get $a) (local.get $k)))
            (v128.load (i32.add (local.get $b) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (local.set $v (f32x4.add (local.get $at) (local.get $bt)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (i32.add (local.get $y) (local.get $last)) (local.get $v)))
      (else (call $stp (local.get $y) (local.get $v) (local.get $n)))))

  ;; y[i] = a[i] b[i] for i < n (y may equal a or b).
  (func $mul_n (param $y i32) (param $a i32) (param $b i32) (param $n i32)
    (local $k i32) (local $last i32) (local $full i32) (local $v v128) (local $at v128) (local $bt v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $at (v128.load (i32.add (local.get $a) (local.get $last))))
        (local.set $bt (v128.load (i32.add (local.get $b) (local.get $last)))))
      (else
        (local.set $at (call $ldp (local.get $a) (local.get $n)))
        (local.set $bt (call $ldp (local.get $b) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $y) (local.get $k))
          (f32x4.mul
            (v128.load (i32.add (local.get $a) (local.get $k)))
            (v128.load (i32.add (local.get $b) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (local.set $v (f32x4.mul (local.get $at) (local.get $bt)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (i32.add (local.get $y) (local.get $last)) (local.get $v)))
      (else (call $stp (local.get $y) (local.get $v) (local.get $n)))))

  ;; y[i] = x[i] for i < n (y and x do not overlap).
  (func $copy_n (param $y i32) (param $x i32) (param $n i32)
    (local $k i32) (local $last i32) (local $full i32) (local $xt v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $xt (v128.load (i32.add (local.get $x) (local.get $last)))))
      (else (local.set $xt (call $ldp (local.get $x) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $y) (local.get $k)) (v128.load (i32.add (local.get $x) (local.get $k))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (i32.add (local.get $y) (local.get $last)) (local.get $xt)))
      (else (call $stp (local.get $y) (local.get $xt) (local.get $n)))))


  ;; ------------------------------------------------------------------------------------------
  ;; Dense kernels, W row-major [rows, cols].

  ;; y = b + W x. Four rows at a time share each loaded x vector, two vectors of x per loop step;
  ;; each row adds its two products together before its accumulator, so the four loop-carried add
  ;; chains take one add per 8 columns (eight accumulators would not fit V8's registers and spill).
  ;; The accumulators are reduced together by two shuffle rounds into [s0 s1 s2 s3], the last
  ;; cols % 4 columns are added as one column vector, and y gets one v128 store per 4 rows.
  ;; b may equal y (that is gemv_acc): each chunk of b is read before y is written.
  (func $gemv_bias (export "gemv_bias")
    (param $y i32) (param $w i32) (param $x i32) (param $b i32) (param $rows i32) (param $cols i32)
    (local $stride i32) (local $vend i32) (local $vend2 i32) (local $rend i32) (local $r i32) (local $j i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $b0 v128)
    (local $xv v128) (local $xw v128) (local $tl v128)
    (local $s f32)
    (local.set $stride (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $vend (i32.and (local.get $stride) (i32.const -16)))
    (local.set $vend2 (i32.and (local.get $stride) (i32.const -32)))
    (local.set $rend (i32.and (local.get $rows) (i32.const -4)))
    (local.set $p0 (local.get $w))
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.ge_u (local.get $r) (local.get $rend)))
        (local.set $p1 (i32.add (local.get $p0) (local.get $stride)))
        (local.set $p2 (i32.add (local.get $p1) (local.get $stride)))
        (local.set $p3 (i32.add (local.get $p2) (local.get $stride)))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $tl (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $v2_done
          (loop $v2
            (br_if $v2_done (i32.ge_u (local.get $j) (local.get $vend2)))
            (local.set $xv (v128.load (i32.add (local.get $x) (local.get $j))))
            (local.set $xw (v128.load offset=16 (i32.add (local.get $x) (local.get $j))))
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.add
                (f32x4.mul (v128.load (i32.add (local.get $p0) (local.get $j))) (local.get $xv))
                (f32x4.mul (v128.load offset=16 (i32.add (local.get $p0) (local.get $j))) (local.get $xw)))))
            (local.set $a1 (f32x4.add (local.get $a1)
              (f32x4.add
                (f32x4.mul (v128.load (i32.add (local.get $p1) (local.get $j))) (local.get $xv))
                (f32x4.mul (v128.load offset=16 (i32.add (local.get $p1) (local.get $j))) (local.get $xw)))))
            (local.set $a2 (f32x4.add (local.get $a2)
              (f32x4.add
                (f32x4.mul (v128.load (i32.add (local.get $p2) (local.get $j))) (local.get $xv))
                (f32x4.mul (v128.load offset=16 (i32.add (local.get $p2) (local.get $j))) (local.get $xw)))))
            (local.set $a3 (f32x4.add (local.get $a3)
              (f32x4.add
                (f32x4.mul (v128.load (i32.add (local.get $p3) (local.get $j))) (local.get $xv))
                (f32x4.mul (v128.load offset=16 (i32.add (local.get $p3) (local.get $j))) (local.get $xw)))))
            (local.set $j (i32.add (local.get $j) (i32.const 32)))
            (br $v2)))
        (if (i32.lt_u (local.get $j) (local.get $vend))
          (then
            (local.set $xv (v128.load (i32.add (local.get $x) (local.get $j))))
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul (v128.load (i32.add (local.get $p0) (local.get $j))) (local.get $xv))))
            (local.set $a1 (f32x4.add (local.get $a1)
              (f32x4.mul (v128.load (i32.add (local.get $p1) (local.get $j))) (local.get $xv))))
            (local.set $a2 (f32x4.add (local.get $a2)
              (f32x4.mul (v128.load (i32.add (local.get $p2) (local.get $j))) (local.get $xv))))
            (local.set $a3 (f32x4.add (local.get $a3)
              (f32x4.mul (v128.load (i32.add (local.get $p3) (local.get $j))) (local.get $xv))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))))
        (block $t_done
          (loop $t
            (br_if $t_done (i32.ge_u (local.get $j) (local.get $stride)))
            (local.set $tl (f32x4.add (local.get $tl)
              (f32x4.mul
                (f32x4.replace_lane 3
                  (f32x4.replace_lane 2
                    (f32x4.replace_lane 1
                      (f32x4.splat (f32.load (i32.add (local.get $p0) (local.get $j))))
                      (f32.load (i32.add (local.get $p1) (local.get $j))))
                    (f32.load (i32.add (local.get $p2) (local.get $j))))
                  (f32.load (i32.add (local.get $p3) (local.get $j))))
                (f32x4.splat (f32.load (i32.add (local.get $x) (local.get $j)))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $t)))
        ;; [a0_0+a0_2, a1_0+a1_2, a0_1+a0_3, a1_1+a1_3], the same for a2, a3, then the halves.
        (local.set $a0 (f32x4.add
          (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a0) (local.get $a1))
          (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a0) (local.get $a1))))
        (local.set $a2 (f32x4.add
          (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a2) (local.get $a3))
          (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a2) (local.get $a3))))
        (local.set $a0 (f32x4.add
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $a2))
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $a2))))
        (v128.store (i32.add (local.get $y) (i32.shl (local.get $r) (i32.const 2)))
          (f32x4.add
            (v128.load (i32.add (local.get $b) (i32.shl (local.get $r) (i32.const 2))))
            (f32x4.add (local.get $a0) (local.get $tl))))
        (local.set $p0 (i32.add (local.get $p3) (local.get $stride)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $blocks)))
    ;; The last rows % 4 rows, one at a time (two accumulators).
    (block $rows_done
      (loop $row
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $b0 (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $v2_done
          (loop $v2
            (br_if $v2_done (i32.ge_u (local.get $j) (local.get $vend2)))
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul
                (v128.load (i32.add (local.get $p0) (local.get $j)))
                (v128.load (i32.add (local.get $x) (local.get $j))))))
            (local.set $b0 (f32x4.add (local.get $b0)
              (f32x4.mul
                (v128.load offset=16 (i32.add (local.get $p0) (local.get $j)))
                (v128.load offset=16 (i32.add (local.get $x) (local.get $j))))))
            (local.set $j (i32.add (local.get $j) (i32.const 32)))
            (br $v2)))
        (if (i32.lt_u (local.get $j) (local.get $vend))
          (then
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul
                (v128.load (i32.add (local.get $p0) (local.get $j)))
                (v128.load (i32.add (local.get $x) (local.get $j))))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))))
        (local.set $a0 (f32x4.add (local.get $a0) (local.get $b0)))
        (local.set $s (f32.add
          (f32.add (f32x4.extract_lane 0 (local.get $a0)) (f32x4.extract_lane 2 (local.get $a0)))
          (f32.add (f32x4.extract_lane 1 (local.get $a0)) (f32x4.extract_lane 3 (local.get $a0)))))
        (block $t_done
          (loop $t
            (br_if $t_done (i32.ge_u (local.get $j) (local.get $stride)))
            (local.set $s (f32.add (local.get $s)
              (f32.mul
                (f32.load (i32.add (local.get $p0) (local.get $j)))
                (f32.load (i32.add (local.get $x) (local.get $j))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $t)))
        (f32.store (i32.add (local.get $y) (i32.shl (local.get $r) (i32.const 2)))
          (f32.add (f32.load (i32.add (local.get $b) (i32.shl (local.get $r) (i32.const 2)))) (local.get $s)))
        (local.set $p0 (i32.add (local.get $p0) (local.get $stride)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))


  ;; y += W x
  (func (export "gemv_acc")
    (param $y i32) (param $w i32) (param $x i32) (param $rows i32) (param $cols i32)
    (call $gemv_bias (local.get $y) (local.get $w) (local.get $x) (local.get $y) (local.get $rows) (local.get $cols)))

  ;; y += W^T v. Four rows at a time: each chunk of y is loaded and stored once per 4 rows.
  ;; A block of 4 rows whose v entries are all 0 is skipped (ReLU and masked gradients are sparse).
  (func (export "gemv_t_acc")
    (param $y i32) (param $w i32) (param $v i32) (param $rows i32) (param $cols i32)
    (local $stride i32) (local $vend i32) (local $rend i32) (local $r i32) (local $j i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $pv i32) (local $py i32)
    (local $v0 f32) (local $v1 f32) (local $v2 f32) (local $v3 f32)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local.set $stride (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $vend (i32.and (local.get $stride) (i32.const -16)))
    (local.set $rend (i32.and (local.get $rows) (i32.const -4)))
    (local.set $p0 (local.get $w))
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.ge_u (local.get $r) (local.get $rend)))
        (local.set $pv (i32.add (local.get $v) (i32.shl (local.get $r) (i32.const 2))))
        (local.set $v0 (f32.load (local.get $pv)))
        (local.set $v1 (f32.load offset=4 (local.get $pv)))
        (local.set $v2 (f32.load offset=8 (local.get $pv)))
        (local.set $v3 (f32.load offset=12 (local.get $pv)))
        (if (i32.or
              (i32.or (f32.ne (local.get $v0) (f32.const 0)) (f32.ne (local.get $v1) (f32.const 0)))
              (i32.or (f32.ne (local.get $v2) (f32.const 0)) (f32.ne (local.get $v3) (f32.const 0))))
          (then
            (local.set $p1 (i32.add (local.get $p0) (local.get $stride)))
            (local.set $p2 (i32.add (local.get $p1) (local.get $stride)))
            (local.set $p3 (i32.add (local.get $p2) (local.get $stride)))
            (local.set $s0 (f32x4.splat (local.get $v0)))
            (local.set $s1 (f32x4.splat (local.get $v1)))
            (local.set $s2 (f32x4.splat (local.get $v2)))
            (local.set $s3 (f32x4.splat (local.get $v3)))
            (local.set $j (i32.const 0))
            (block $v_done
              (loop $vl
                (br_if $v_done (i32.ge_u (local.get $j) (local.get $vend)))
                (local.set $py (i32.add (local.get $y) (local.get $j)))
                (v128.store (local.get $py)
                  (f32x4.add (v128.load (local.get $py))
                    (f32x4.add
                      (f32x4.add
                        (f32x4.mul (v128.load (i32.add (local.get $p0) (local.get $j))) (local.get $s0))
                        (f32x4.mul (v128.load (i32.add (local.get $p1) (local.get $j))) (local.get $s1)))
                      (f32x4.add
                        (f32x4.mul (v128.load (i32.add (local.get $p2) (local.get $j))) (local.get $s2))
                        (f32x4.mul (v128.load (i32.add (local.get $p3) (local.get $j))) (local.get $s3))))))
                (local.set $j (i32.add (local.get $j) (i32.const 16)))
                (br $vl)))
            (block $t_done
              (loop $tl
                (br_if $t_done (i32.ge_u (local.get $j) (local.get $stride)))
                (local.set $py (i32.add (local.get $y) (local.get $j)))
                (f32.store (local.get $py)
                  (f32.add (f32.load (local.get $py))
                    (f32.add
                      (f32.add
                        (f32.mul (f32.load (i32.add (local.get $p0) (local.get $j))) (local.get $v0))
                        (f32.mul (f32.load (i32.add (local.get $p1) (local.get $j))) (local.get $v1)))
                      (f32.add
                        (f32.mul (f32.load (i32.add (local.get $p2) (local.get $j))) (local.get $v2))
                        (f32.mul (f32.load (i32.add (local.get $p3) (local.get $j))) (local.get $v3))))))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $tl)))))
        (local.set $p0 (i32.add (local.get $p0) (i32.shl (local.get $stride) (i32.const 2))))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $blocks)))
    ;; The last rows % 4 rows, one at a time (a row with v = 0 is skipped, as in the JS kernel).
    (block $rows_done
      (loop $row
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $v0 (f32.load (i32.add (local.get $v) (i32.shl (local.get $r) (i32.const 2)))))
        (if (f32.ne (local.get $v0) (f32.const 0))
          (then
            (local.set $s0 (f32x4.splat (local.get $v0)))
            (local.set $j (i32.const 0))
            (block $v_done
              (loop $vl
                (br_if $v_done (i32.ge_u (local.get $j) (local.get $vend)))
                (local.set $py (i32.add (local.get $y) (local.get $j)))
                (v128.store (local.get $py)
                  (f32x4.add (v128.load (local.get $py))
                    (f32x4.mul (v128.load (i32.add (local.get $p0) (local.get $j))) (local.get $s0))))
                (local.set $j (i32.add (local.get $j) (i32.const 16)))
                (br $vl)))
            (block $t_done
              (loop $tl
                (br_if $t_done (i32.ge_u (local.get $j) (local.get $stride)))
                (local.set $py (i32.add (local.get $y) (local.get $j)))
                (f32.store (local.get $py)
                  (f32.add (f32.load (local.get $py))
                    (f32.mul (f32.load (i32.add (local.get $p0) (local.get $j))) (local.get $v0))))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $tl)))))
        (local.set $p0 (i32.add (local.get $p0) (local.get $stride)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; G += v x^T, row by row, two vectors per loop step; a row with v = 0 is skipped, as in the JS
  ;; kernel.
  (func (export "ger_acc")
    (param $g i32) (param $v i32) (param $x i32) (param $rows i32) (param $cols i32)
    (local $stride i32) (local $vend i32) (local $vend2 i32) (local $r i32) (local $j i32) (local $p i32)
    (local $pg i32) (local $px i32) (local $vr f32) (local $s v128)
    (local.set $stride (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $vend (i32.and (local.get $stride) (i32.const -16)))
    (local.set $vend2 (i32.and (local.get $stride) (i32.const -32)))
    (local.set $p (local.get $g))
    (block $rows_done
      (loop $row
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $vr (f32.load (i32.add (local.get $v) (i32.shl (local.get $r) (i32.const 2)))))
        (if (f32.ne (local.get $vr) (f32.const 0))
          (then
            (local.set $s (f32x4.splat (local.get $vr)))
            (local.set $j (i32.const 0))
            (block $v_done
              (loop $vl
                (br_if $v_done (i32.ge_u (local.get $j) (local.get $vend2)))
                (local.set $pg (i32.add (local.get $p) (local.get $j)))
                (local.set $px (i32.add (local.get $x) (local.get $j)))
                (v128.store (local.get $pg)
                  (f32x4.add (v128.load (local.get $pg)) (f32x4.mul (local.get $s) (v128.load (local.get $px)))))
                (v128.store offset=16 (local.get $pg)
                  (f32x4.add (v128.load offset=16 (local.get $pg))
                    (f32x4.mul (local.get $s) (v128.load offset=16 (local.get $px)))))
                (local.set $j (i32.add (local.get $j) (i32.const 32)))
                (br $vl)))
            (if (i32.lt_u (local.get $j) (local.get $vend))
              (then
                (local.set $pg (i32.add (local.get $p) (local.get $j)))
                (v128.store (local.get $pg)
                  (f32x4.add (v128.load (local.get $pg))
                    (f32x4.mul (local.get $s) (v128.load (i32.add (local.get $x) (local.get $j))))))
                (local.set $j (i32.add (local.get $j) (i32.const 16)))))
            (block $t_done
              (loop $tl
                (br_if $t_done (i32.ge_u (local.get $j) (local.get $stride)))
                (local.set $pg (i32.add (local.get $p) (local.get $j)))
                (f32.store (local.get $pg)
                  (f32.add (f32.load (local.get $pg))
                    (f32.mul (local.get $vr) (f32.load (i32.add (local.get $x) (local.get $j))))))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $tl)))))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; ------------------------------------------------------------------------------------------
  ;; A window's weight gradient in one pass: G [rows, cols] += V^T X = sum over steps t of
  ;; V[t, :]^T X[t, :], with V [steps, rows] (each step's gate gradients) and X [steps, cols] (each
  ;; step's layer input) step-major. ger_acc per step reads and writes all of G once per step; here
  ;; a block of 4 rows x 8 columns of G stays in registers over every step, so G is read and
  ;; written once per window. Each element is G + V[0,r] X[0,c] + V[1,r] X[1,c] + ..., in step order.

  ;; One block: rows n = 1..4 of G (pg, rows gs bytes apart) at columns c..c+7, V's columns of those
  ;; rows at p0..p3 (a missing row repeats the pointer before), X's columns at px; V and X rows are
  ;; vs and xs bytes apart. Rows past n start at 0 and are never stored.
  (func $gers_k8
    (param $pg i32) (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $p3 i32) (param $px i32)
    (param $steps i32) (param $vs i32) (param $xs i32) (param $gs i32) (param $n i32)
    (local $t i32) (local $vo i32) (local $p i32)
    (local $a00 v128) (local $a01 v128) (local $a10 v128) (local $a11 v128)
    (local $a20 v128) (local $a21 v128) (local $a30 v128) (local $a31 v128)
    (local $xv v128) (local $xw v128) (local $s v128)
    (local.set $p (local.get $pg))
    (local.set $a00 (v128.load (local.get $p)))
    (local.set $a01 (v128.load offset=16 (local.get $p)))
    (if (i32.gt_u (local.get $n) (i32.const 1))
      (then
        (local.set $p (i32.add (local.get $p) (local.get $gs)))
        (local.set $a10 (v128.load (local.get $p)))
        (local.set $a11 (v128.load offset=16 (local.get $p)))))
    (if (i32.gt_u (local.get $n) (i32.const 2))
      (then
        (local.set $p (i32.add (local.get $p) (local.get $gs)))
        (local.set $a20 (v128.load (local.get $p)))
        (local.set $a21 (v128.load offset=16 (local.get $p)))))
    (if (i32.gt_u (local.get $n) (i32.const 3))
      (then
        (local.set $p (i32.add (local.get $p) (local.get $gs)))
        (local.set $a30 (v128.load (local.get $p)))
        (local.set $a31 (v128.load offset=16 (local.get $p)))))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $t) (local.get $steps)))
        (local.set $xv (v128.load (local.get $px)))
        (local.set $xw (v128.load offset=16 (local.get $px)))
        (local.set $s (v128.load32_splat (i32.add (local.get $p0) (local.get $vo))))
        (local.set $a00 (f32x4.add (local.get $a00) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a01 (f32x4.add (local.get $a01) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p1) (local.get $vo))))
        (local.set $a10 (f32x4.add (local.get $a10) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a11 (f32x4.add (local.get $a11) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p2) (local.get $vo))))
        (local.set $a20 (f32x4.add (local.get $a20) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a21 (f32x4.add (local.get $a21) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p3) (local.get $vo))))
        (local.set $a30 (f32x4.add (local.get $a30) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a31 (f32x4.add (local.get $a31) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $px (i32.add (local.get $px) (local.get $xs)))
        (local.set $vo (i32.add (local.get $vo) (local.get $vs)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $step)))
    (v128.store (local.get $pg) (local.get $a00))
    (v128.store offset=16 (local.get $pg) (local.get $a01))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 2)))
    (local.set $pg (i32.add (local.get $pg) (local.get $gs)))
    (v128.store (local.get $pg) (local.get $a10))
    (v128.store offset=16 (local.get $pg) (local.get $a11))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 3)))
    (local.set $pg (i32.add (local.get $pg) (local.get $gs)))
    (v128.store (local.get $pg) (local.get $a20))
    (v128.store offset=16 (local.get $pg) (local.get $a21))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 4)))
    (local.set $pg (i32.add (local.get $pg) (local.get $gs)))
    (v128.store (local.get $pg) (local.get $a30))
    (v128.store offset=16 (local.get $pg) (local.get $a31)))

  ;; As $gers_k8 for columns c..c+m-1, m = 1..4 (one vector per row): the last columns of G. G and
  ;; X lanes [m, 4) load as 0 and are never stored (they belong to the next row, or lie past the end).
  (func $gers_k4
    (param $pg i32) (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $p3 i32) (param $px i32)
    (param $steps i32) (param $vs i32) (param $xs i32) (param $gs i32) (param $n i32) (param $m i32)
    (local $t i32) (local $vo i32) (local $p i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $xv v128) (local $s v128)
    (local.set $p (local.get $pg))
    (local.set $a0 (call $ld4 (local.get $p) (local.get $m)))
    (if (i32.gt_u (local.get $n) (i32.const 1))
      (then
        (local.set $p (i32.add (local.get $p) (local.get $gs)))
        (local.set $a1 (call $ld4 (local.get $p) (local.get $m)))))
    (if (i32.gt_u (local.get $n) (i32.const 2))
      (then
        (local.set $p (i32.add (local.get $p) (local.get $gs)))
        (local.set $a2 (call $ld4 (local.get $p) (local.get $m)))))
    (if (i32.gt_u (local.get $n) (i32.const 3))
      (then
        (local.set $p (i32.add (local.get $p) (local.get $gs)))
        (local.set $a3 (call $ld4 (local.get $p) (local.get $m)))))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $t) (local.get $steps)))
        (if (i32.eq (local.get $m) (i32.const 4))
          (then (local.set $xv (v128.load (local.get $px))))
          (else
            (local.set $xv (v128.load32_zero (local.get $px)))
            (if (i32.gt_u (local.get $m) (i32.const 1))
              (then (local.set $xv (v128.load32_lane offset=4 1 (local.get $px) (local.get $xv)))))
            (if (i32.gt_u (local.get $m) (i32.const 2))
              (then (local.set $xv (v128.load32_lane offset=8 2 (local.get $px) (local.get $xv)))))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p0) (local.get $vo))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p1) (local.get $vo))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p2) (local.get $vo))))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p3) (local.get $vo))))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $px (i32.add (local.get $px) (local.get $xs)))
        (local.set $vo (i32.add (local.get $vo) (local.get $vs)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $step)))
    (call $stp4 (local.get $pg) (local.get $a0) (local.get $m))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 2)))
    (local.set $pg (i32.add (local.get $pg) (local.get $gs)))
    (call $stp4 (local.get $pg) (local.get $a1) (local.get $m))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 3)))
    (local.set $pg (i32.add (local.get $pg) (local.get $gs)))
    (call $stp4 (local.get $pg) (local.get $a2) (local.get $m))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 4)))
    (local.set $pg (i32.add (local.get $pg) (local.get $gs)))
    (call $stp4 (local.get $pg) (local.get $a3) (local.get $m)))

  ;; Loads lanes [0, m) at p, m = 1..4; the others are 0.
  (func $ld4 (param $p i32) (param $m i32) (result v128)
    (if (result v128) (i32.eq (local.get $m) (i32.const 4))
      (then (v128.load (local.get $p)))
      (else (call $ldp (local.get $p) (local.get $m)))))

  ;; G [rows, cols] += V^T X, V [steps, rows], X [steps, cols] (see above). G must not overlap V or X.
  (func (export "ger_steps_acc")
    (param $g i32) (param $v i32) (param $x i32) (param $rows i32) (param $cols i32) (param $steps i32)
    (local $gs i32) (local $vs i32) (local $r i32) (local $n i32) (local $c i32) (local $left i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $pg i32)
    (if (i32.or (i32.eqz (local.get $steps)) (i32.eqz (local.get $cols))) (then (return)))
    (local.set $gs (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $vs (i32.shl (local.get $rows) (i32.const 2)))
    (local.set $p0 (local.get $v))
    (local.set $pg (local.get $g))
    (block $rows_done
      (loop $block
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $n (i32.sub (local.get $rows) (local.get $r)))
        (if (i32.gt_u (local.get $n) (i32.const 4)) (then (local.set $n (i32.const 4))))
        (local.set $p1 (local.get $p0))
        (if (i32.gt_u (local.get $n) (i32.const 1)) (then (local.set $p1 (i32.add (local.get $p0) (i32.const 4)))))
        (local.set $p2 (local.get $p1))
        (if (i32.gt_u (local.get $n) (i32.const 2)) (then (local.set $p2 (i32.add (local.get $p1) (i32.const 4)))))
        (local.set $p3 (local.get $p2))
        (if (i32.gt_u (local.get $n) (i32.const 3)) (then (local.set $p3 (i32.add (local.get $p2) (i32.const 4)))))
        (local.set $c (i32.const 0))
        (block $cols_done
          (loop $cols8
            (br_if $cols_done (i32.gt_s (i32.add (local.get $c) (i32.const 32)) (local.get $gs)))
            (call $gers_k8
              (i32.add (local.get $pg) (local.get $c)) (local.get $p0) (local.get $p1) (local.get $p2)
              (local.get $p3) (i32.add (local.get $x) (local.get $c)) (local.get $steps) (local.get $vs)
              (local.get $gs) (local.get $gs) (local.get $n))
            (local.set $c (i32.add (local.get $c) (i32.const 32)))
            (br $cols8)))
        (local.set $left (i32.shr_u (i32.sub (local.get $gs) (local.get $c)) (i32.const 2)))
        (if (i32.ge_u (local.get $left) (i32.const 4))
          (then
            (call $gers_k4
              (i32.add (local.get $pg) (local.get $c)) (local.get $p0) (local.get $p1) (local.get $p2)
              (local.get $p3) (i32.add (local.get $x) (local.get $c)) (local.get $steps) (local.get $vs)
              (local.get $gs) (local.get $gs) (local.get $n) (i32.const 4))
            (local.set $c (i32.add (local.get $c) (i32.const 16)))
            (local.set $left (i32.sub (local.get $left) (i32.const 4)))))
        (if (i32.gt_u (local.get $left) (i32.const 0))
          (then
            (call $gers_k4
              (i32.add (local.get $pg) (local.get $c)) (local.get $p0) (local.get $p1) (local.get $p2)
              (local.get $p3) (i32.add (local.get $x) (local.get $c)) (local.get $steps) (local.get $vs)
              (local.get $gs) (local.get $gs) (local.get $n) (local.get $left))))
        (local.set $p0 (i32.add (local.get $p3) (i32.const 4)))
        (local.set $pg (i32.add (local.get $pg) (i32.shl (local.get $gs) (i32.const 2))))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $block))))

  ;; b [rows] += sum over steps t of V[t, :], V [steps, rows] step-major (a window's bias gradient),
  ;; each element summed in step order.
  (func (export "sum_steps_acc") (param $b i32) (param $v i32) (param $rows i32) (param $steps i32)
    (local $vs i32) (local $j i32) (local $end i32) (local $t i32) (local $pv i32) (local $m i32)
    (local $a v128)
    (local.set $vs (i32.shl (local.get $rows) (i32.const 2)))
    (local.set $end (i32.and (local.get $vs) (i32.const -16)))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $a (v128.load (i32.add (local.get $b) (local.get $j))))
        (local.set $pv (i32.add (local.get $v) (local.get $j)))
        (local.set $t (i32.const 0))
        (block $steps_done
          (loop $step
            (br_if $steps_done (i32.ge_u (local.get $t) (local.get $steps)))
            (local.set $a (f32x4.add (local.get $a) (v128.load (local.get $pv))))
            (local.set $pv (i32.add (local.get $pv) (local.get $vs)))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))
            (br $step)))
        (v128.store (i32.add (local.get $b) (local.get $j)) (local.get $a))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $chunk)))
    (local.set $m (i32.shr_u (i32.sub (local.get $vs) (local.get $end)) (i32.const 2)))
    (if (i32.eqz (local.get $m)) (then (return)))
    (local.set $a (call $ldp (i32.add (local.get $b) (local.get $end)) (local.get $m)))
    (local.set $pv (i32.add (local.get $v) (local.get $end)))
    (local.set $t (i32.const 0))
    (block $steps_done
      (loop $step
        (br_if $steps_done (i32.ge_u (local.get $t) (local.get $steps)))
        (local.set $a (f32x4.add (local.get $a) (call $ldp (local.get $pv) (local.get $m))))
        (local.set $pv (i32.add (local.get $pv) (local.get $vs)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $step)))
    (call $stp (i32.add (local.get $b) (local.get $end)) (local.get $a) (local.get $m)))

  ;; ------------------------------------------------------------------------------------------
  ;; Batched dense kernel: many keys (independent sequences) through the same W at once.
  ;; X [cols, batch] and Y [rows, batch] are batch-minor: element (j, k) at j batch + k, so key k
  ;; is column k and one v128 load takes keys k..k+3 of one row. Each output is
  ;;   y[r, k] = (((b[r] + W[r,0] x[0,k]) + W[r,1] x[1,k]) + ...) + W[r,cols-1] x[cols-1,k],
  ;; the same sequence of f32 operations whichever block computes it, so a result does not depend
  ;; on the batch size or on where its key sits in the batch.

  ;; One block: rows p0..p3 of W (row pointers; a missing row repeats the one before) times keys
  ;; k..k+7 of X (px = x + 4k), into Y at py (rows n = 1..4 stored, bs bytes apart), biases at pb.
  ;; Outer products: each W entry is splat once and serves 8 keys, each X vector serves 4 rows;
  ;; 8 accumulators, two X vectors and the splat stay in registers (no reductions at the end).
  ;; One column per loop step: unrolled further, TurboFan hoists every load of the step to its top
  ;; and spills (measured 1.6x slower at four columns). Blocks of 5 rows x 8 keys and 2 rows x 16
  ;; keys measured no faster than this one (about 20 GMAC/s on W_hh [256 x 64] against 14 for
  ;; gemv_bias, on an AMD EPYC).
  (func $gemm_k8
    (param $py i32) (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $p3 i32)
    (param $px i32) (param $pb i32) (param $cols i32) (param $bs i32) (param $n i32)
    (local $j i32) (local $jend i32)
    (local $a00 v128) (local $a01 v128) (local $a10 v128) (local $a11 v128)
    (local $a20 v128) (local $a21 v128) (local $a30 v128) (local $a31 v128)
    (local $xv v128) (local $xw v128) (local $s v128)
    (local.set $a00 (v128.load32_splat (local.get $pb)))
    (local.set $a10 (local.get $a00))
    (local.set $a20 (local.get $a00))
    (local.set $a30 (local.get $a00))
    (if (i32.gt_u (local.get $n) (i32.const 1))
      (then
        (local.set $a10 (v128.load32_splat offset=4 (local.get $pb)))
        (local.set $a20 (local.get $a10))
        (local.set $a30 (local.get $a10))))
    (if (i32.gt_u (local.get $n) (i32.const 2))
      (then
        (local.set $a20 (v128.load32_splat offset=8 (local.get $pb)))
        (local.set $a30 (local.get $a20))))
    (if (i32.gt_u (local.get $n) (i32.const 3))
      (then (local.set $a30 (v128.load32_splat offset=12 (local.get $pb)))))
    (local.set $a01 (local.get $a00))
    (local.set $a11 (local.get $a10))
    (local.set $a21 (local.get $a20))
    (local.set $a31 (local.get $a30))
    (local.set $jend (i32.shl (local.get $cols) (i32.const 2)))
    (block $done
      (loop $col
        (br_if $done (i32.ge_u (local.get $j) (local.get $jend)))
        (local.set $xv (v128.load (local.get $px)))
        (local.set $xw (v128.load offset=16 (local.get $px)))
        (local.set $s (v128.load32_splat (i32.add (local.get $p0) (local.get $j))))
        (local.set $a00 (f32x4.add (local.get $a00) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a01 (f32x4.add (local.get $a01) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p1) (local.get $j))))
        (local.set $a10 (f32x4.add (local.get $a10) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a11 (f32x4.add (local.get $a11) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p2) (local.get $j))))
        (local.set $a20 (f32x4.add (local.get $a20) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a21 (f32x4.add (local.get $a21) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p3) (local.get $j))))
        (local.set $a30 (f32x4.add (local.get $a30) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $a31 (f32x4.add (local.get $a31) (f32x4.mul (local.get $s) (local.get $xw))))
        (local.set $px (i32.add (local.get $px) (local.get $bs)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $col)))
    (v128.store (local.get $py) (local.get $a00))
    (v128.store offset=16 (local.get $py) (local.get $a01))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 2)))
    (local.set $py (i32.add (local.get $py) (local.get $bs)))
    (v128.store (local.get $py) (local.get $a10))
    (v128.store offset=16 (local.get $py) (local.get $a11))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 3)))
    (local.set $py (i32.add (local.get $py) (local.get $bs)))
    (v128.store (local.get $py) (local.get $a20))
    (v128.store offset=16 (local.get $py) (local.get $a21))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 4)))
    (local.set $py (i32.add (local.get $py) (local.get $bs)))
    (v128.store (local.get $py) (local.get $a30))
    (v128.store offset=16 (local.get $py) (local.get $a31)))

  ;; As $gemm_k8 for keys k..k+m-1, m = 1..4 (one vector per row): for batches of fewer than 8.
  ;; For m < 4 the X lanes [m, 4) load as 0 and are never stored.
  (func $gemm_k4
    (param $py i32) (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $p3 i32)
    (param $px i32) (param $pb i32) (param $cols i32) (param $bs i32) (param $n i32) (param $m i32)
    (local $j i32) (local $jend i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $xv v128) (local $s v128)
    (local.set $a0 (v128.load32_splat (local.get $pb)))
    (local.set $a1 (local.get $a0))
    (local.set $a2 (local.get $a0))
    (local.set $a3 (local.get $a0))
    (if (i32.gt_u (local.get $n) (i32.const 1))
      (then
        (local.set $a1 (v128.load32_splat offset=4 (local.get $pb)))
        (local.set $a2 (local.get $a1))
        (local.set $a3 (local.get $a1))))
    (if (i32.gt_u (local.get $n) (i32.const 2))
      (then
        (local.set $a2 (v128.load32_splat offset=8 (local.get $pb)))
        (local.set $a3 (local.get $a2))))
    (if (i32.gt_u (local.get $n) (i32.const 3))
      (then (local.set $a3 (v128.load32_splat offset=12 (local.get $pb)))))
    (local.set $jend (i32.shl (local.get $cols) (i32.const 2)))
    (block $done
      (loop $col
        (br_if $done (i32.ge_u (local.get $j) (local.get $jend)))
        (if (i32.eq (local.get $m) (i32.const 4))
          (then (local.set $xv (v128.load (local.get $px))))
          (else
            (local.set $xv (v128.load32_zero (local.get $px)))
            (if (i32.gt_u (local.get $m) (i32.const 1))
              (then (local.set $xv (v128.load32_lane offset=4 1 (local.get $px) (local.get $xv)))))
            (if (i32.gt_u (local.get $m) (i32.const 2))
              (then (local.set $xv (v128.load32_lane offset=8 2 (local.get $px) (local.get $xv)))))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p0) (local.get $j))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p1) (local.get $j))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p2) (local.get $j))))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $s (v128.load32_splat (i32.add (local.get $p3) (local.get $j))))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $s) (local.get $xv))))
        (local.set $px (i32.add (local.get $px) (local.get $bs)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $col)))
    (call $stp4 (local.get $py) (local.get $a0) (local.get $m))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 2)))
    (local.set $py (i32.add (local.get $py) (local.get $bs)))
    (call $stp4 (local.get $py) (local.get $a1) (local.get $m))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 3)))
    (local.set $py (i32.add (local.get $py) (local.get $bs)))
    (call $stp4 (local.get $py) (local.get $a2) (local.get $m))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 4)))
    (local.set $py (i32.add (local.get $py) (local.get $bs)))
    (call $stp4 (local.get $py) (local.get $a3) (local.get $m)))

  ;; Stores lanes [0, m) of v at p, m = 1..4.
  (func $stp4 (param $p i32) (param $v v128) (param $m i32)
    (if (i32.eq (local.get $m) (i32.const 4))
      (then (v128.store (local.get $p) (local.get $v)))
      (else (call $stp (local.get $p) (local.get $v) (local.get $m)))))

  ;; Y [rows, batch] = b 1^T + W X (see above); W [rows, cols] row-major, b [rows].
  ;; Blocks of 4 rows (the last 1..3 rows repeat a row pointer and store only their own rows) by
  ;; 8 keys; a last partial block of keys is computed again at k = batch - 8, overlapping the one
  ;; before it (those lanes get the same values again), so the loop never sees a partial vector.
  ;; Batches of 4..7 use two overlapping 4-key blocks, batches of 1..3 one partial block (lanes
  ;; wasted: model.stepBatch steps fewer than 8 keys one by one instead).
  ;; Y must not overlap W, X or b.
  (func (export "gemm_bias")
    (param $y i32) (param $w i32) (param $x i32) (param $b i32) (param $rows i32) (param $cols i32)
    (param $batch i32)
    (local $ws i32) (local $bs i32) (local $r i32) (local $n i32) (local $k i32) (local $klast i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $py i32) (local $pb i32)
    (if (i32.or (i32.eqz (local.get $rows)) (i32.eqz (local.get $batch))) (then (return)))
    (local.set $ws (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $bs (i32.shl (local.get $batch) (i32.const 2)))
    (local.set $klast (i32.sub (local.get $bs) (i32.const 32)))
    (local.set $p0 (local.get $w))
    (local.set $py (local.get $y))
    (local.set $pb (local.get $b))
    (block $rows_done
      (loop $block
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $n (i32.sub (local.get $rows) (local.get $r)))
        (if (i32.gt_u (local.get $n) (i32.const 4)) (then (local.set $n (i32.const 4))))
        (local.set $p1 (local.get $p0))
        (if (i32.gt_u (local.get $n) (i32.const 1)) (then (local.set $p1 (i32.add (local.get $p0) (local.get $ws)))))
        (local.set $p2 (local.get $p1))
        (if (i32.gt_u (local.get $n) (i32.const 2)) (then (local.set $p2 (i32.add (local.get $p1) (local.get $ws)))))
        (local.set $p3 (local.get $p2))
        (if (i32.gt_u (local.get $n) (i32.const 3)) (then (local.set $p3 (i32.add (local.get $p2) (local.get $ws)))))
        (if (i32.ge_u (local.get $batch) (i32.const 8))
          (then
            (local.set $k (i32.const 0))
            (block $keys_done
              (loop $keys
                (br_if $keys_done (i32.gt_s (local.get $k) (local.get $klast)))
                (call $gemm_k8
                  (i32.add (local.get $py) (local.get $k)) (local.get $p0) (local.get $p1) (local.get $p2)
                  (local.get $p3) (i32.add (local.get $x) (local.get $k)) (local.get $pb) (local.get $cols)
                  (local.get $bs) (local.get $n))
                (local.set $k (i32.add (local.get $k) (i32.const 32)))
                (br $keys)))
            (if (i32.lt_u (local.get $k) (local.get $bs))
              (then
                (call $gemm_k8
                  (i32.add (local.get $py) (local.get $klast)) (local.get $p0) (local.get $p1) (local.get $p2)
                  (local.get $p3) (i32.add (local.get $x) (local.get $klast)) (local.get $pb) (local.get $cols)
                  (local.get $bs) (local.get $n)))))
          (else
            (if (i32.ge_u (local.get $batch) (i32.const 4))
              (then
                (call $gemm_k4 (local.get $py) (local.get $p0) (local.get $p1) (local.get $p2) (local.get $p3)
                  (local.get $x) (local.get $pb) (local.get $cols) (local.get $bs) (local.get $n) (i32.const 4))
                (if (i32.gt_u (local.get $batch) (i32.const 4))
                  (then
                    (call $gemm_k4
                      (i32.add (local.get $py) (i32.sub (local.get $bs) (i32.const 16)))
                      (local.get $p0) (local.get $p1) (local.get $p2) (local.get $p3)
                      (i32.add (local.get $x) (i32.sub (local.get $bs) (i32.const 16)))
                      (local.get $pb) (local.get $cols) (local.get $bs) (local.get $n) (i32.const 4)))))
              (else
                (call $gemm_k4 (local.get $py) (local.get $p0) (local.get $p1) (local.get $p2) (local.get $p3)
                  (local.get $x) (local.get $pb) (local.get $cols) (local.get $bs) (local.get $n)
                  (local.get $batch))))))
        (local.set $p0 (i32.add (local.get $p3) (local.get $ws)))
        (local.set $py (i32.add (local.get $py) (i32.shl (local.get $bs) (i32.const 2))))
        (local.set $pb (i32.add (local.get $pb) (i32.const 16)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $block))))

  ;; y [cols, rows] = x^T for x [rows, cols] row-major: y[j rows + i] = x[i cols + j]. 4x4 blocks
  ;; transposed in registers (two rounds of unpacks); when rows or cols is not a multiple of 4 the
  ;; last block row / column starts at rows - 4 / cols - 4, overlapping the one before (a copy
  ;; stores the same values again). Below 4 rows or columns, one float at a time.
  ;; y must not overlap x. model.stepBatch turns its states [keys, stateSize] into the
  ;; batch-minor [stateSize, keys] with this and back.
  (func (export "transpose") (param $y i32) (param $x i32) (param $rows i32) (param $cols i32)
    (local $i i32) (local $j i32) (local $px i32) (local $py i32) (local $xs i32) (local $ys i32)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (if (i32.or (i32.eqz (local.get $rows)) (i32.eqz (local.get $cols))) (then (return)))
    (local.set $xs (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $ys (i32.shl (local.get $rows) (i32.const 2)))
    (if (i32.or (i32.lt_u (local.get $rows) (i32.const 4)) (i32.lt_u (local.get $cols) (i32.const 4)))
      (then
        (loop $srow
          (local.set $j (i32.const 0))
          (loop $scol
            (f32.store
              (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $rows)) (local.get $i)) (i32.const 2)))
              (f32.load
                (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $cols)) (local.get $j)) (i32.const 2)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $scol (i32.lt_u (local.get $j) (local.get $cols))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $srow (i32.lt_u (local.get $i) (local.get $rows))))
        (return)))
    (loop $brow
      (local.set $j (i32.const 0))
      (loop $bcol
        ;; the block at rows i..i+3, columns j..j+3 of x
        (local.set $px (i32.add (local.get $x)
          (i32.shl (i32.add (i32.mul (local.get $i) (local.get $cols)) (local.get $j)) (i32.const 2))))
        (local.set $v0 (v128.load (local.get $px)))
        (local.set $px (i32.add (local.get $px) (local.get $xs)))
        (local.set $v1 (v128.load (local.get $px)))
        (local.set $px (i32.add (local.get $px) (local.get $xs)))
        (local.set $v2 (v128.load (local.get $px)))
        (local.set $px (i32.add (local.get $px) (local.get $xs)))
        (local.set $v3 (v128.load (local.get $px)))
        ;; t0 = [v0_0 v1_0 v0_1 v1_1], t1 = [v0_2 v1_2 v0_3 v1_3], t2, t3 the same for v2, v3
        (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $v0) (local.get $v1)))
        (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $v0) (local.get $v1)))
        (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $v2) (local.get $v3)))
        (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $v2) (local.get $v3)))
        (local.set $py (i32.add (local.get $y)
          (i32.shl (i32.add (i32.mul (local.get $j) (local.get $rows)) (local.get $i)) (i32.const 2))))
        (v128.store (local.get $py)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
        (local.set $py (i32.add (local.get $py) (local.get $ys)))
        (v128.store (local.get $py)
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
        (local.set $py (i32.add (local.get $py) (local.get $ys)))
        (v128.store (local.get $py)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
        (local.set $py (i32.add (local.get $py) (local.get $ys)))
        (v128.store (local.get $py)
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
        ;; next block column: j + 4, or cols - 4 for a last partial one
        (if (i32.lt_u (i32.add (local.get $j) (i32.const 4)) (local.get $cols))
          (then
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (if (i32.gt_u (local.get $j) (i32.sub (local.get $cols) (i32.const 4)))
              (then (local.set $j (i32.sub (local.get $cols) (i32.const 4)))))
            (br $bcol))))
      (if (i32.lt_u (i32.add (local.get $i) (i32.const 4)) (local.get $rows))
        (then
          (local.set $i (i32.add (local.get $i) (i32.const 4)))
          (if (i32.gt_u (local.get $i) (i32.sub (local.get $rows) (i32.const 4)))
            (then (local.set $i (i32.sub (local.get $rows) (i32.const 4)))))
          (br $brow)))))

  ;; ------------------------------------------------------------------------------------------
  ;; Cells: the pointwise part, exactly src/cells/*.ts (same equations, cache layouts and
  ;; overwrite semantics). Each loop step handles lanes [k, k + 4) of every H-block; the last
  ;; step of an H that is not a multiple of 4 takes the $ldp/$stp branch.

  ;; LSTM. state [h | c]; cache [i f g o tanh(c)]; gates in PyTorch order i, f, g, o.
  ;; In passes, so that the activations run as tight array loops over the cache:
  ;; cache[0, 4H) = gih + ghh; sigmoid on [i f] and [o], tanh on [g], in place; c = f c_prev + i g
  ;; into cand[H, 2H) and cache[4H, 5H); tanh in place there; h = o tanh(c) into cand[0, H).
  ;; cand may equal state_in: each chunk of c_prev is read before the same lanes of c are written,
  ;; and h_prev is not read at all (it entered through ghh).
  (func (export "lstm_fwd")
    (param $cand i32) (param $cache i32) (param $gih i32) (param $ghh i32) (param $st i32) (param $H i32)
    (local $hb i32) (local $k i32) (local $m i32)
    (local $pi i32) (local $pf i32) (local $pg i32) (local $po i32) (local $pt i32) (local $pcp i32) (local $pcc i32)
    (local $c v128)
    (local.set $hb (i32.shl (local.get $H) (i32.const 2)))
    (local.set $pf (i32.add (local.get $cache) (local.get $hb)))
    (local.set $pg (i32.add (local.get $pf) (local.get $hb)))
    (local.set $po (i32.add (local.get $pg) (local.get $hb)))
    (local.set $pt (i32.add (local.get $po) (local.get $hb)))
    (local.set $pcp (i32.add (local.get $st) (local.get $hb)))
    (local.set $pcc (i32.add (local.get $cand) (local.get $hb)))
    (call $add_n (local.get $cache) (local.get $gih) (local.get $ghh) (i32.shl (local.get $H) (i32.const 2)))
    (call $sigmoid_n (local.get $cache) (local.get $cache) (i32.shl (local.get $H) (i32.const 1)))
    (call $tanh_n (local.get $pg) (local.get $pg) (local.get $H))
    (call $sigmoid_n (local.get $po) (local.get $po) (local.get $H))
    ;; c = f c_prev + i g
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $hb)))
        (local.set $m (i32.shr_u (i32.sub (local.get $hb) (local.get $k)) (i32.const 2)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (local.set $c (f32x4.add
              (f32x4.mul
                (v128.load (i32.add (local.get $pf) (local.get $k)))
                (v128.load (i32.add (local.get $pcp) (local.get $k))))
              (f32x4.mul
                (v128.load (i32.add (local.get $cache) (local.get $k)))
                (v128.load (i32.add (local.get $pg) (local.get $k))))))
            (v128.store (i32.add (local.get $pcc) (local.get $k)) (local.get $c))
            (v128.store (i32.add (local.get $pt) (local.get $k)) (local.get $c)))
          (else
            (local.set $c (f32x4.add
              (f32x4.mul
                (call $ldp (i32.add (local.get $pf) (local.get $k)) (local.get $m))
                (call $ldp (i32.add (local.get $pcp) (local.get $k)) (local.get $m)))
              (f32x4.mul
                (call $ldp (i32.add (local.get $cache) (local.get $k)) (local.get $m))
                (call $ldp (i32.add (local.get $pg) (local.get $k)) (local.get $m)))))
            (call $stp (i32.add (local.get $pcc) (local.get $k)) (local.get $c) (local.get $m))
            (call $stp (i32.add (local.get $pt) (local.get $k)) (local.get $c) (local.get $m))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (call $tanh_n (local.get $pt) (local.get $pt) (local.get $H))
    (call $mul_n (local.get $cand) (local.get $po) (local.get $pt) (local.get $H)))


  ;; dh = dcand[k], dc = dcand[H+k] + dh o (1 - tc^2); writes dg [i f g o] and dstate [0 | dc f].
  ;; 1 - t^2 is computed as (1 - t)(1 + t): no cancellation when |t| is close to 1.
  (func (export "lstm_bwd")
    (param $dg i32) (param $dst i32) (param $dcand i32) (param $cache i32) (param $st i32) (param $H i32)
    (local $hb i32) (local $k i32) (local $m i32) (local $pc i32) (local $pd i32)
    (local $i v128) (local $f v128) (local $g v128) (local $o v128) (local $tc v128)
    (local $dh v128) (local $dcc v128) (local $cp v128) (local $dc v128) (local $one v128)
    (local.set $hb (i32.shl (local.get $H) (i32.const 2)))
    (local.set $one (v128.const f32x4 1 1 1 1))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $hb)))
        (local.set $m (i32.shr_u (i32.sub (local.get $hb) (local.get $k)) (i32.const 2)))
        (local.set $pc (i32.add (local.get $cache) (local.get $k)))
        (local.set $pd (i32.add (local.get $dcand) (local.get $k)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (local.set $i (v128.load (local.get $pc)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $f (v128.load (local.get $pc)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $g (v128.load (local.get $pc)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $o (v128.load (local.get $pc)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $tc (v128.load (local.get $pc)))
            (local.set $dh (v128.load (local.get $pd)))
            (local.set $dcc (v128.load (i32.add (local.get $pd) (local.get $hb))))
            (local.set $cp (v128.load (i32.add (i32.add (local.get $st) (local.get $hb)) (local.get $k)))))
          (else
            (local.set $i (call $ldp (local.get $pc) (local.get $m)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $f (call $ldp (local.get $pc) (local.get $m)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $g (call $ldp (local.get $pc) (local.get $m)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $o (call $ldp (local.get $pc) (local.get $m)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $tc (call $ldp (local.get $pc) (local.get $m)))
            (local.set $dh (call $ldp (local.get $pd) (local.get $m)))
            (local.set $dcc (call $ldp (i32.add (local.get $pd) (local.get $hb)) (local.get $m)))
            (local.set $cp (call $ldp (i32.add (i32.add (local.get $st) (local.get $hb)) (local.get $k)) (local.get $m)))))
        (local.set $dc (f32x4.add (local.get $dcc)
          (f32x4.mul (f32x4.mul (local.get $dh) (local.get $o))
            (f32x4.mul (f32x4.sub (local.get $one) (local.get $tc)) (f32x4.add (local.get $one) (local.get $tc))))))
        ;; reuse the input locals for the outputs: i -> di, f stays (dstate needs it), g -> dgg, o -> do
        (local.set $cp (f32x4.mul
          (f32x4.mul (f32x4.mul (local.get $dc) (local.get $cp)) (local.get $f))
          (f32x4.sub (local.get $one) (local.get $f))))
        (local.set $tc (f32x4.mul
          (f32x4.mul (f32x4.mul (local.get $dh) (local.get $tc)) (local.get $o))
          (f32x4.sub (local.get $one) (local.get $o))))
        (local.set $o (f32x4.mul
          (f32x4.mul (f32x4.mul (local.get $dc) (local.get $g)) (local.get $i))
          (f32x4.sub (local.get $one) (local.get $i))))
        (local.set $g (f32x4.mul (f32x4.mul (local.get $dc) (local.get $i))
          (f32x4.mul (f32x4.sub (local.get $one) (local.get $g)) (f32x4.add (local.get $one) (local.get $g)))))
        (local.set $f (f32x4.mul (local.get $dc) (local.get $f)))
        ;; now o = dg_i, cp = dg_f, g = dg_g, tc = dg_o, f = dstate_c
        (local.set $pc (i32.add (local.get $dg) (local.get $k)))
        (local.set $pd (i32.add (local.get $dst) (local.get $k)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (v128.store (local.get $pc) (local.get $o))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (v128.store (local.get $pc) (local.get $cp))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (v128.store (local.get $pc) (local.get $g))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (v128.store (local.get $pc) (local.get $tc))
            (v128.store (local.get $pd) (v128.const i32x4 0 0 0 0))
            (v128.store (i32.add (local.get $pd) (local.get $hb)) (local.get $f)))
          (else
            (call $stp (local.get $pc) (local.get $o) (local.get $m))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (call $stp (local.get $pc) (local.get $cp) (local.get $m))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (call $stp (local.get $pc) (local.get $g) (local.get $m))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (call $stp (local.get $pc) (local.get $tc) (local.get $m))
            (call $stp (local.get $pd) (v128.const i32x4 0 0 0 0) (local.get $m))
            (call $stp (i32.add (local.get $pd) (local.get $hb)) (local.get $f) (local.get $m))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk))))

  ;; GRU. state [h]; cache [r z n hn], hn = W_hn h + b_hn; gates in PyTorch order r, z, n.
  ;; In passes: cache[0, 2H) = sigmoid(gih + ghh) (r, z); cache[2H, 3H) = gih_n + r hn, then tanh
  ;; in place (n); cache[3H, 4H) = hn; cand = (1 - z) n + z h_prev. cand may equal state_in.
  (func (export "gru_fwd")
    (param $cand i32) (param $cache i32) (param $gih i32) (param $ghh i32) (param $st i32) (param $H i32)
    (local $hb i32) (local $k i32) (local $m i32) (local $pz i32) (local $pn i32) (local $ph i32)
    (local $pxn i32) (local $phn i32)
    (local $r v128) (local $hn v128) (local $z v128) (local $n v128) (local $hp v128)
    (local.set $hb (i32.shl (local.get $H) (i32.const 2)))
    (local.set $pz (i32.add (local.get $cache) (local.get $hb)))
    (local.set $pn (i32.add (local.get $pz) (local.get $hb)))
    (local.set $ph (i32.add (local.get $pn) (local.get $hb)))
    (local.set $pxn (i32.add (local.get $gih) (i32.shl (local.get $hb) (i32.const 1))))
    (local.set $phn (i32.add (local.get $ghh) (i32.shl (local.get $hb) (i32.const 1))))
    (call $add_n (local.get $cache) (local.get $gih) (local.get $ghh) (i32.shl (local.get $H) (i32.const 1)))
    (call $sigmoid_n (local.get $cache) (local.get $cache) (i32.shl (local.get $H) (i32.const 1)))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $hb)))
        (local.set $m (i32.shr_u (i32.sub (local.get $hb) (local.get $k)) (i32.const 2)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (local.set $r (v128.load (i32.add (local.get $cache) (local.get $k))))
            (local.set $hn (v128.load (i32.add (local.get $phn) (local.get $k))))
            (v128.store (i32.add (local.get $pn) (local.get $k))
              (f32x4.add (v128.load (i32.add (local.get $pxn) (local.get $k))) (f32x4.mul (local.get $r) (local.get $hn))))
            (v128.store (i32.add (local.get $ph) (local.get $k)) (local.get $hn)))
          (else
            (local.set $r (call $ldp (i32.add (local.get $cache) (local.get $k)) (local.get $m)))
            (local.set $hn (call $ldp (i32.add (local.get $phn) (local.get $k)) (local.get $m)))
            (call $stp (i32.add (local.get $pn) (local.get $k))
              (f32x4.add
                (call $ldp (i32.add (local.get $pxn) (local.get $k)) (local.get $m))
                (f32x4.mul (local.get $r) (local.get $hn)))
              (local.get $m))
            (call $stp (i32.add (local.get $ph) (local.get $k)) (local.get $hn) (local.get $m))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (call $tanh_n (local.get $pn) (local.get $pn) (local.get $H))
    (local.set $k (i32.const 0))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $hb)))
        (local.set $m (i32.shr_u (i32.sub (local.get $hb) (local.get $k)) (i32.const 2)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (local.set $z (v128.load (i32.add (local.get $pz) (local.get $k))))
            (local.set $n (v128.load (i32.add (local.get $pn) (local.get $k))))
            (local.set $hp (v128.load (i32.add (local.get $st) (local.get $k)))))
          (else
            (local.set $z (call $ldp (i32.add (local.get $pz) (local.get $k)) (local.get $m)))
            (local.set $n (call $ldp (i32.add (local.get $pn) (local.get $k)) (local.get $m)))
            (local.set $hp (call $ldp (i32.add (local.get $st) (local.get $k)) (local.get $m)))))
        (local.set $hp (f32x4.add
          (f32x4.mul (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $z)) (local.get $n))
          (f32x4.mul (local.get $z) (local.get $hp))))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then (v128.store (i32.add (local.get $cand) (local.get $k)) (local.get $hp)))
          (else (call $stp (i32.add (local.get $cand) (local.get $k)) (local.get $hp) (local.get $m))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk))))


  ;; dAn = dh (1 - z)(1 - n^2), dAr = dAn hn r (1 - r), dAz = dh (h_prev - n) z (1 - z);
  ;; dgih = [dAr dAz dAn], dghh = [dAr dAz dAn r], dstate = dh z.
  (func (export "gru_bwd")
    (param $dgih i32) (param $dghh i32) (param $dst i32) (param $dcand i32) (param $cache i32) (param $st i32)
    (param $H i32)
    (local $hb i32) (local $k i32) (local $m i32) (local $pc i32) (local $pd i32)
    (local $r v128) (local $z v128) (local $n v128) (local $hn v128) (local $dh v128) (local $hp v128)
    (local $dan v128) (local $one v128)
    (local.set $hb (i32.shl (local.get $H) (i32.const 2)))
    (local.set $one (v128.const f32x4 1 1 1 1))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $hb)))
        (local.set $m (i32.shr_u (i32.sub (local.get $hb) (local.get $k)) (i32.const 2)))
        (local.set $pc (i32.add (local.get $cache) (local.get $k)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (local.set $r (v128.load (local.get $pc)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $z (v128.load (local.get $pc)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $n (v128.load (local.get $pc)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $hn (v128.load (local.get $pc)))
            (local.set $dh (v128.load (i32.add (local.get $dcand) (local.get $k))))
            (local.set $hp (v128.load (i32.add (local.get $st) (local.get $k)))))
          (else
            (local.set $r (call $ldp (local.get $pc) (local.get $m)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $z (call $ldp (local.get $pc) (local.get $m)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $n (call $ldp (local.get $pc) (local.get $m)))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $hn (call $ldp (local.get $pc) (local.get $m)))
            (local.set $dh (call $ldp (i32.add (local.get $dcand) (local.get $k)) (local.get $m)))
            (local.set $hp (call $ldp (i32.add (local.get $st) (local.get $k)) (local.get $m)))))
        (local.set $dan (f32x4.mul
          (f32x4.mul (local.get $dh) (f32x4.sub (local.get $one) (local.get $z)))
          (f32x4.mul (f32x4.sub (local.get $one) (local.get $n)) (f32x4.add (local.get $one) (local.get $n)))))
        ;; hn -> dAr, hp -> dAz, n -> dAn r, dh -> dstate
        (local.set $hn (f32x4.mul
          (f32x4.mul (f32x4.mul (local.get $dan) (local.get $hn)) (local.get $r))
          (f32x4.sub (local.get $one) (local.get $r))))
        (local.set $hp (f32x4.mul
          (f32x4.mul (f32x4.mul (local.get $dh) (f32x4.sub (local.get $hp) (local.get $n))) (local.get $z))
          (f32x4.sub (local.get $one) (local.get $z))))
        (local.set $n (f32x4.mul (local.get $dan) (local.get $r)))
        (local.set $dh (f32x4.mul (local.get $dh) (local.get $z)))
        (local.set $pc (i32.add (local.get $dgih) (local.get $k)))
        (local.set $pd (i32.add (local.get $dghh) (local.get $k)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (v128.store (local.get $pc) (local.get $hn))
            (v128.store (local.get $pd) (local.get $hn))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $pd (i32.add (local.get $pd) (local.get $hb)))
            (v128.store (local.get $pc) (local.get $hp))
            (v128.store (local.get $pd) (local.get $hp))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $pd (i32.add (local.get $pd) (local.get $hb)))
            (v128.store (local.get $pc) (local.get $dan))
            (v128.store (local.get $pd) (local.get $n))
            (v128.store (i32.add (local.get $dst) (local.get $k)) (local.get $dh)))
          (else
            (call $stp (local.get $pc) (local.get $hn) (local.get $m))
            (call $stp (local.get $pd) (local.get $hn) (local.get $m))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $pd (i32.add (local.get $pd) (local.get $hb)))
            (call $stp (local.get $pc) (local.get $hp) (local.get $m))
            (call $stp (local.get $pd) (local.get $hp) (local.get $m))
            (local.set $pc (i32.add (local.get $pc) (local.get $hb)))
            (local.set $pd (i32.add (local.get $pd) (local.get $hb)))
            (call $stp (local.get $pc) (local.get $dan) (local.get $m))
            (call $stp (local.get $pd) (local.get $n) (local.get $m))
            (call $stp (i32.add (local.get $dst) (local.get $k)) (local.get $dh) (local.get $m))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk))))

  ;; Elman RNN, tanh: cache = tanh(gih + ghh), cand = cache.
  (func (export "rnn_tanh_fwd") (param $cand i32) (param $cache i32) (param $gih i32) (param $ghh i32) (param $H i32)
    (call $add_n (local.get $cache) (local.get $gih) (local.get $ghh) (local.get $H))
    (call $tanh_n (local.get $cache) (local.get $cache) (local.get $H))
    (call $copy_n (local.get $cand) (local.get $cache) (local.get $H)))

  ;; Elman RNN, ReLU: cand = cache = max(gih + ghh, 0). f32x4.max (not pmax) so that NaN
  ;; propagates and -0 becomes +0, as Math.max(pre, 0) does.
  (func (export "rnn_relu_fwd") (param $cand i32) (param $cache i32) (param $gih i32) (param $ghh i32) (param $H i32)
    (local $hb i32) (local $k i32) (local $m i32) (local $v v128)
    (local.set $hb (i32.shl (local.get $H) (i32.const 2)))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $hb)))
        (local.set $m (i32.shr_u (i32.sub (local.get $hb) (local.get $k)) (i32.const 2)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (local.set $v (f32x4.max
              (f32x4.add
                (v128.load (i32.add (local.get $gih) (local.get $k)))
                (v128.load (i32.add (local.get $ghh) (local.get $k))))
              (v128.const i32x4 0 0 0 0)))
            (v128.store (i32.add (local.get $cand) (local.get $k)) (local.get $v))
            (v128.store (i32.add (local.get $cache) (local.get $k)) (local.get $v)))
          (else
            (local.set $v (f32x4.max
              (f32x4.add
                (call $ldp (i32.add (local.get $gih) (local.get $k)) (local.get $m))
                (call $ldp (i32.add (local.get $ghh) (local.get $k)) (local.get $m)))
              (v128.const i32x4 0 0 0 0)))
            (call $stp (i32.add (local.get $cand) (local.get $k)) (local.get $v) (local.get $m))
            (call $stp (i32.add (local.get $cache) (local.get $k)) (local.get $v) (local.get $m))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk))))


  ;; dg = dcand (1 - h^2) for tanh, dcand where h > 0 (else +0) for ReLU; dstate = 0.
  (func $rnn_bwd (param $dg i32) (param $dst i32) (param $dcand i32) (param $cache i32) (param $H i32)
    (param $relu i32)
    (local $hb i32) (local $k i32) (local $m i32) (local $h v128) (local $d v128)
    (local.set $hb (i32.shl (local.get $H) (i32.const 2)))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $hb)))
        (local.set $m (i32.shr_u (i32.sub (local.get $hb) (local.get $k)) (i32.const 2)))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (local.set $h (v128.load (i32.add (local.get $cache) (local.get $k))))
            (local.set $d (v128.load (i32.add (local.get $dcand) (local.get $k)))))
          (else
            (local.set $h (call $ldp (i32.add (local.get $cache) (local.get $k)) (local.get $m)))
            (local.set $d (call $ldp (i32.add (local.get $dcand) (local.get $k)) (local.get $m)))))
        (if (local.get $relu)
          (then (local.set $d (v128.and (local.get $d) (f32x4.gt (local.get $h) (v128.const i32x4 0 0 0 0)))))
          (else
            (local.set $d (f32x4.mul (local.get $d)
              (f32x4.mul
                (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $h))
                (f32x4.add (v128.const f32x4 1 1 1 1) (local.get $h)))))))
        (if (i32.ge_u (local.get $m) (i32.const 4))
          (then
            (v128.store (i32.add (local.get $dg) (local.get $k)) (local.get $d))
            (v128.store (i32.add (local.get $dst) (local.get $k)) (v128.const i32x4 0 0 0 0)))
          (else
            (call $stp (i32.add (local.get $dg) (local.get $k)) (local.get $d) (local.get $m))
            (call $stp (i32.add (local.get $dst) (local.get $k)) (v128.const i32x4 0 0 0 0) (local.get $m))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk))))

  (func (export "rnn_tanh_bwd") (param $dg i32) (param $dst i32) (param $dcand i32) (param $cache i32) (param $H i32)
    (call $rnn_bwd (local.get $dg) (local.get $dst) (local.get $dcand) (local.get $cache) (local.get $H) (i32.const 0)))

  (func (export "rnn_relu_bwd") (param $dg i32) (param $dst i32) (param $dcand i32) (param $cache i32) (param $H i32)
    (call $rnn_bwd (local.get $dg) (local.get $dst) (local.get $dcand) (local.get $cache) (local.get $H) (i32.const 1)))

  ;; ------------------------------------------------------------------------------------------
  ;; Optimizer-side kernels.

  ;; Sum of squares in float64: each f32 square is exact in f64 (24-bit mantissas, 48-bit
  ;; product), so the only error is the f64 accumulation (about n/8 * 2^-53 relative). Two vectors
  ;; per loop step into four f64x2 accumulators (four add chains); the last n % 4 through $ldp.
  (func (export "sum_squares") (param $p i32) (param $n i32) (result f64)
    (local $k i32) (local $vend i32) (local $vend2 i32) (local $v v128) (local $w v128) (local $h v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $vend (i32.and (i32.shl (local.get $n) (i32.const 2)) (i32.const -16)))
    (local.set $vend2 (i32.and (i32.shl (local.get $n) (i32.const 2)) (i32.const -32)))
    (block $done
      (loop $chunk
        (br_if $done (i32.ge_u (local.get $k) (local.get $vend2)))
        (local.set $v (v128.load (i32.add (local.get $p) (local.get $k))))
        (local.set $w (v128.load offset=16 (i32.add (local.get $p) (local.get $k))))
        (local.set $h (f64x2.promote_low_f32x4 (local.get $v)))
        (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $h) (local.get $h))))
        (local.set $h (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
        (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $h) (local.get $h))))
        (local.set $h (f64x2.promote_low_f32x4 (local.get $w)))
        (local.set $a2 (f64x2.add (local.get $a2) (f64x2.mul (local.get $h) (local.get $h))))
        (local.set $h (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $w) (local.get $w))))
        (local.set $a3 (f64x2.add (local.get $a3) (f64x2.mul (local.get $h) (local.get $h))))
        (local.set $k (i32.add (local.get $k) (i32.const 32)))
        (br $chunk)))
    ;; then at most one more whole vector, then the last n % 4 (zero-padded): into $w, then the sums
    (local.set $w (v128.const i32x4 0 0 0 0))
    (if (i32.lt_u (local.get $k) (local.get $vend))
      (then (local.set $w (v128.load (i32.add (local.get $p) (local.get $k))))))
    (local.set $v (v128.const i32x4 0 0 0 0))
    (if (i32.and (local.get $n) (i32.const 3))
      (then
        (local.set $v (call $ldp (i32.add (local.get $p) (local.get $vend)) (i32.and (local.get $n) (i32.const 3))))))
    (local.set $h (f64x2.promote_low_f32x4 (local.get $w)))
    (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $h) (local.get $h))))
    (local.set $h (f64x2.promote_low_f32x4
      (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $w) (local.get $w))))
    (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $h) (local.get $h))))
    (local.set $h (f64x2.promote_low_f32x4 (local.get $v)))
    (local.set $a2 (f64x2.add (local.get $a2) (f64x2.mul (local.get $h) (local.get $h))))
    (local.set $h (f64x2.promote_low_f32x4
      (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
    (local.set $a3 (f64x2.add (local.get $a3) (f64x2.mul (local.get $h) (local.get $h))))
    (local.set $a0 (f64x2.add (f64x2.add (local.get $a0) (local.get $a1)) (f64x2.add (local.get $a2) (local.get $a3))))
    (f64.add (f64x2.extract_lane 0 (local.get $a0)) (f64x2.extract_lane 1 (local.get $a0))))

  ;; p *= factor, the product taken in f64 and rounded once to f32: bit for bit the result of
  ;; `p[i] = p[i] * factor` on a Float32Array in JS (clipByGlobalNorm). Tail first (see above).
  (func (export "scale") (param $p i32) (param $n i32) (param $factor f64)
    (local $k i32) (local $last i32) (local $full i32) (local $v v128) (local $xt v128) (local $fv v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (local.set $fv (f64x2.splat (local.get $factor)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $xt (v128.load (i32.add (local.get $p) (local.get $last)))))
      (else (local.set $xt (call $ldp (local.get $p) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (if (local.get $full)
          (then (local.set $v (v128.load (i32.add (local.get $p) (local.get $k)))))
          (else (local.set $v (local.get $xt))))
        (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (local.get $fv)))
          (f32x4.demote_f64x2_zero (f64x2.mul
            (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
            (local.get $fv)))))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $p) (local.get $k)) (local.get $v))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (i32.add (local.get $p) (local.get $last)) (local.get $v)))
      (else (call $stp (local.get $p) (local.get $v) (local.get $n)))))

  ;; One Adam/AdamW step, as src/optimizers.ts:
  ;;   p <- p decay; g' = g + l2 p; m <- b1 m + (1 - b1) g'; v <- b2 v + (1 - b2) g'^2;
  ;;   p <- p - lr_over_bc1 m / (sqrt(v) / bc2sqrt + eps).
  ;; The scalars come in as f64 (JS numbers); 1 - b1, 1 - b2 and the folded constants are formed
  ;; in f64 and rounded once. The update is computed as (lr_over_bc1 bc2sqrt) m / (sqrt(v) +
  ;; eps bc2sqrt), the same quotient with one division fewer. Tail first (see above), with the
  ;; four inputs of the last chunk loaded before the loop.
  (func (export "adam")
    (param $p i32) (param $g i32) (param $mp i32) (param $vp i32) (param $n i32)
    (param $lr_over_bc1 f64) (param $beta1 f64) (param $beta2 f64) (param $eps f64) (param $bc2sqrt f64)
    (param $decay f64) (param $l2 f64)
    (local $k i32) (local $last i32) (local $full i32)
    (local $cdecay v128) (local $cl2 v128) (local $cb1 v128) (local $c1b1 v128) (local $cb2 v128)
    (local $c1b2 v128) (local $cstep v128) (local $ceps v128)
    (local $pi v128) (local $gi v128) (local $mi v128) (local $vi v128)
    (local $tp v128) (local $tg v128) (local $tm v128) (local $tv v128)
    (if (i32.eqz (local.get $n)) (then (return)))
    (local.set $cdecay (f32x4.splat (f32.demote_f64 (local.get $decay))))
    (local.set $cl2 (f32x4.splat (f32.demote_f64 (local.get $l2))))
    (local.set $cb1 (f32x4.splat (f32.demote_f64 (local.get $beta1))))
    (local.set $c1b1 (f32x4.splat (f32.demote_f64 (f64.sub (f64.const 1) (local.get $beta1)))))
    (local.set $cb2 (f32x4.splat (f32.demote_f64 (local.get $beta2))))
    (local.set $c1b2 (f32x4.splat (f32.demote_f64 (f64.sub (f64.const 1) (local.get $beta2)))))
    (local.set $cstep (f32x4.splat (f32.demote_f64 (f64.mul (local.get $lr_over_bc1) (local.get $bc2sqrt)))))
    (local.set $ceps (f32x4.splat (f32.demote_f64 (f64.mul (local.get $eps) (local.get $bc2sqrt)))))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (local.set $last (i32.sub (i32.shl (local.get $n) (i32.const 2)) (i32.const 16)))
        (local.set $tp (v128.load (i32.add (local.get $p) (local.get $last))))
        (local.set $tg (v128.load (i32.add (local.get $g) (local.get $last))))
        (local.set $tm (v128.load (i32.add (local.get $mp) (local.get $last))))
        (local.set $tv (v128.load (i32.add (local.get $vp) (local.get $last)))))
      (else
        (local.set $tp (call $ldp (local.get $p) (local.get $n)))
        (local.set $tg (call $ldp (local.get $g) (local.get $n)))
        (local.set $tm (call $ldp (local.get $mp) (local.get $n)))
        (local.set $tv (call $ldp (local.get $vp) (local.get $n)))))
    (block $exit
      (loop $chunk
        (local.set $full (i32.lt_u (local.get $k) (local.get $last)))
        (if (local.get $full)
          (then
            (local.set $pi (v128.load (i32.add (local.get $p) (local.get $k))))
            (local.set $gi (v128.load (i32.add (local.get $g) (local.get $k))))
            (local.set $mi (v128.load (i32.add (local.get $mp) (local.get $k))))
            (local.set $vi (v128.load (i32.add (local.get $vp) (local.get $k)))))
          (else
            (local.set $pi (local.get $tp))
            (local.set $gi (local.get $tg))
            (local.set $mi (local.get $tm))
            (local.set $vi (local.get $tv))))
        (local.set $pi (f32x4.mul (local.get $pi) (local.get $cdecay)))
        (local.set $gi (f32x4.add (local.get $gi) (f32x4.mul (local.get $cl2) (local.get $pi))))
        (local.set $mi (f32x4.add
          (f32x4.mul (local.get $cb1) (local.get $mi))
          (f32x4.mul (local.get $c1b1) (local.get $gi))))
        (local.set $vi (f32x4.add
          (f32x4.mul (local.get $cb2) (local.get $vi))
          (f32x4.mul (f32x4.mul (local.get $c1b2) (local.get $gi)) (local.get $gi))))
        (local.set $pi (f32x4.sub (local.get $pi)
          (f32x4.div
            (f32x4.mul (local.get $cstep) (local.get $mi))
            (f32x4.add (f32x4.sqrt (local.get $vi)) (local.get $ceps)))))
        (br_if $exit (i32.eqz (local.get $full)))
        (v128.store (i32.add (local.get $p) (local.get $k)) (local.get $pi))
        (v128.store (i32.add (local.get $mp) (local.get $k)) (local.get $mi))
        (v128.store (i32.add (local.get $vp) (local.get $k)) (local.get $vi))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $chunk)))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (v128.store (i32.add (local.get $p) (local.get $last)) (local.get $pi))
        (v128.store (i32.add (local.get $mp) (local.get $last)) (local.get $mi))
        (v128.store (i32.add (local.get $vp) (local.get $last)) (local.get $vi)))
      (else
        (call $stp (local.get $p) (local.get $pi) (local.get $n))
        (call $stp (local.get $mp) (local.get $mi) (local.get $n))
        (call $stp (local.get $vp) (local.get $vi) (local.get $n)))))
)
