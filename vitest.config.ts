import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  resolve: {
    alias: {
      'rxrnn/server': fileURLToPath(new URL('./streams/server/index.ts', import.meta.url)),
      'rxrnn/streams': fileURLToPath(new URL('./streams/index.ts', import.meta.url)),
      rxrnn: fileURLToPath(new URL('./src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
