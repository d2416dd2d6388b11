import { defineConfig } from 'vite';

// The page calls relative /api/ URLs: behind nginx they reach the backend on
// the same origin. `npm run dev` forwards them to a backend run locally.
export default defineConfig({
  server: {
    proxy: {
      '/api': process.env.ATARYS_BACKEND || 'http://127.0.0.1:5000',
    },
  },
});
