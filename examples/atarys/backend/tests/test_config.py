import logging
import unittest

from atarys.config import ConfigError, config_from_env

GOOD = {
    "SECRET_KEY": "s3cret",
    "DATABASE_URL": "postgresql://atarys:pw@127.0.0.1:5432/atarys",
}


class ConfigFromEnv(unittest.TestCase):
    def test_defaults(self):
        cfg = config_from_env(dict(GOOD))
        self.assertEqual(cfg.log_level, logging.INFO)
        self.assertEqual(cfg.env, "production")
        self.assertEqual(cfg.cors_origins, frozenset())
        self.assertEqual(cfg.metrics_dir, "")

    def test_values(self):
        cfg = config_from_env(
            dict(
                GOOD,
                LOG_LEVEL="debug",
                ATARYS_ENV="dev",
                CORS_ORIGINS=" https://a.test/ ,http://b.test:8080,, ",
            )
        )
        self.assertEqual(cfg.log_level, logging.DEBUG)
        self.assertEqual(cfg.env, "dev")
        self.assertEqual(cfg.cors_origins, {"https://a.test", "http://b.test:8080"})

    def test_errors_name_the_variable_and_hide_secrets(self):
        cases = [
            ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
            ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
            ({"DATABASE_URL": "mysql://u:hunter2@h/db"}, "DATABASE_URL is not a libpq URI"),
            ({"LOG_LEVEL": "loud"}, "LOG_LEVEL 'loud' is not a level"),
            ({"ATARYS_ENV": "prod"}, "ATARYS_ENV 'prod' is not one of"),
            ({"CORS_ORIGINS": "a.test"}, "CORS_ORIGINS entry 'a.test'"),
        ]
        for change, message in cases:
            env = dict(GOOD)
            env.update(change)
            with self.subTest(change=change), self.assertRaises(ConfigError) as cm:
                config_from_env(env)
            self.assertIn(message, str(cm.exception))
            self.assertNotIn("hunter2", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
