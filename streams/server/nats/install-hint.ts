/**
 * What to run when the optional NATS clients are missing. Apart from clients.ts, whose types name
 * those packages: this one is safe to export to users who never installed them.
 */
export const NATS_INSTALL = 'npm install @nats-io/transport-node @nats-io/jetstream @nats-io/kv'
