// @ts-check
// Lint: typescript-eslint's type-aware recommended rules over src/, test/ and bench/
// (each folder type-checked with its own tsconfig.json), formatting rules left to
// prettier (eslint-config-prettier). A rule is turned off or tuned only with its reason.
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'dist-bench/', 'node_modules/', 'src/native/build/', '.cache/', 'state/', 'tftproot/'] },
  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', '*.ts'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // An `async` function without `await` is how this code implements a
      // Promise-returning interface (Booter, virtual files, close/stop): a throw inside
      // it becomes a rejection the caller handles, never a synchronous exception.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // plain-JavaScript helper scripts (test/fixtures/): no TypeScript program to check them against
    files: ['**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
  },
  prettier,
);
