from drf_spectacular.extensions import OpenApiAuthenticationExtension


class JobsApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "jobs.authentication.JobsTokenAuthentication"
    name = "jobsApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "query",
            "name": "apikey",
            "description": (
                "The API key as the `apikey` parameter (query, form field or JSON body field), "
                "or `Authorization: Token <key>`."
            ),
        }
