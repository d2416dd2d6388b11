import unittest

from atarys.validate import ValidationError, parse_limit, validate_new_chantier


class ValidateNewChantier(unittest.TestCase):
    def test_defaults_and_trimming(self):
        self.assertEqual(
            validate_new_chantier({"name": "  Pont "}),
            {"name": "Pont", "client": None, "status": "planned"},
        )
        self.assertEqual(
            validate_new_chantier({"name": "a", "client": " ", "status": "done"}),
            {"name": "a", "client": None, "status": "done"},
        )

    def test_name_bounds(self):
        self.assertEqual(validate_new_chantier({"name": "x" * 200})["name"], "x" * 200)
        for bad in ("", "   ", "x" * 201, 3, None, ["a"], "a\x00b"):
            with self.subTest(name=bad), self.assertRaises(ValidationError) as cm:
                validate_new_chantier({"name": bad})
            self.assertEqual(cm.exception.field, "name")

    def test_other_fields(self):
        cases = [
            ({"name": "a", "status": "paused"}, "status"),
            ({"name": "a", "status": ["planned"]}, "status"),
            ({"name": "a", "client": 5}, "client"),
            ({"name": "a", "client": "c" * 201}, "client"),
            ({"name": "a", "id": 4}, "id"),
        ]
        for data, field in cases:
            with self.subTest(data=data), self.assertRaises(ValidationError) as cm:
                validate_new_chantier(data)
            self.assertEqual(cm.exception.field, field)

    def test_not_an_object(self):
        for bad in ([], "name", 1):
            with self.subTest(body=bad), self.assertRaises(ValidationError):
                validate_new_chantier(bad)


class ParseLimit(unittest.TestCase):
    def test_values(self):
        self.assertEqual(parse_limit(None), 100)
        self.assertEqual(parse_limit("1"), 1)
        self.assertEqual(parse_limit("1000"), 1000)
        for bad in ("0", "1001", "-1", "ten", "²", "1.5"):
            with self.subTest(limit=bad), self.assertRaises(ValidationError):
                parse_limit(bad)


if __name__ == "__main__":
    unittest.main()
