// Node < 22 lacks Promise.withResolvers, which a js-ipfs dependency calls.
// Preloaded with NODE_OPTIONS=--require <this file> by start.sh.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
